"""Offline checks of the load harness (no server, no load): the report of a run built
from known records, the targets it checks, its JSON, the scenario registry and the
tool check. `python3 load/tests/test_harness.py` (CI runs it)."""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bulkhead_load import (config, generators, pgbench, scenarios, services,  # noqa: E402
                           tools, upstreams)
from bulkhead_load.scenarios import events, gateway_failing, reload  # noqa: E402
from bulkhead_load.report import markdown  # noqa: E402
from bulkhead_load.results import (Meta, PgbenchRatio, PgbenchResult,  # noqa: E402
                                   Report, Round, RoundFigures, Sample, ScenarioResult,
                                   WrkSummary, to_json)
from bulkhead_load.sampling import status_classes  # noqa: E402
from bulkhead_load.targets import add_ratios, check_targets, five_xx_check, versus  # noqa: E402


def result(name, rps, p99, statuses=None):
    return ScenarioResult(
        name=name, title=f"{name} title", generator="wrk (closed loop)", connections=64,
        status_counted_in_lua=bool(statuses), note="",
        wrk=WrkSummary(requests=int(rps * 3), duration_s=3.0, rps=rps, p50_ms=0.5,
                       p90_ms=1.0, p99_ms=p99, p999_ms=p99 * 2, max_ms=p99 * 3,
                       non_2xx_3xx=0, socket_errors={}, status_counts=statuses),
        sample=Sample(server_cpu_s=1.0, server_cpu_cores=0.9, generator_cpu_s=1.0,
                      server_context_switches={"voluntary": 1, "involuntary": 1},
                      rss_before_mb=10.0, rss_after_mb=11.0, rss_peak_mb=12.0,
                      vm_hwm_mb=12.0),
        cpu_us_per_request=10.0, context_switches_per_request=0.1)


def report(s1_rps, lean_rps):
    rep = Report(meta=Meta(
        timestamp="t", commit="abc1234", branch="b", dirty=False, host="h", cores=2,
        loadavg_start="1 1 1", workers=2, threads=2, connections=64, duration_s=3,
        warmup_s=1, users=200, products=200, access_log=False, quick=True,
        server_env={}, wrk=["wrk 4"]))
    rep.floor = result("floor", 100_000.0, 4.0)
    rep.baselines = [result("inline_axum", 70_000.0, 3.0),
                     result("lean_axum", lean_rps, 2.0)]
    rep.scenarios = [result("s1_users_me", s1_rps, 3.0),
                     result("s2_products", 9_000.0, 10.0, {"200": 27_000, "500": 1})]
    figures = {b.name: RoundFigures(b.rps, b.p99_ms, 10.0)
               for b in [rep.floor] + rep.baselines + rep.scenarios[:1]}
    rep.rounds = [Round(round=1, figures=figures), Round(round=2, figures=figures)]
    add_ratios(rep)
    rep.versus = {n: versus(rep, n) for n in ("inline_axum", "lean_axum")}
    rep.targets = check_targets(rep)
    return rep


class ReportTest(unittest.TestCase):
    def test_targets_follow_the_figures(self):
        rep = report(s1_rps=85_000.0, lean_rps=90_000.0)
        got = {t.target: t.passed for t in rep.targets}
        self.assertTrue(got["scenario 1 rps >= 0.75 x floor"])
        self.assertTrue(got["scenario 1 faster than the inline axum design"])
        self.assertFalse(got["scenario 1 ahead of lean axum"])
        self.assertFalse(got["no 5xx but the contract's 503 in any scenario"])
        self.assertTrue({t.target: t.passed for t in report(95_000.0, 90_000.0).targets}
                        ["scenario 1 ahead of lean axum"])

    def test_markdown_has_every_system_and_round(self):
        md = markdown(report(s1_rps=85_000.0, lean_rps=90_000.0))
        for row in ("| floor: floor title | 100,000 | 1.00 |",
                    "| lean_axum: lean_axum title | 90,000 | 0.90 |",
                    "| s1_users_me: s1_users_me title | 85,000 | 0.85 |",
                    "| Bulkhead s1 / lean axum | req/s ratio | p99 ratio |",
                    "| 85,000 / 90,000 req/s; p99 3.00 / 2.00 ms | 0.94 | 1.50 |",
                    "| 2 | 100,000 (4.00) | 70,000 (3.00) | 90,000 (2.00) | 85,000 (3.00) "
                    "| 0.94 | 1.21 | 0.85 |",
                    "| scenario 1 ahead of lean axum | FAIL |"):
            self.assertIn(row, md)

    def test_opt_in_studies_alone_make_a_report(self):
        rep = Report(meta=report(85_000.0, 90_000.0).meta)
        rep.studies["reload"] = {"markdown": ["| a | b |", "|---|---|", "| 1 | 2 |"],
                                 "data": {"sighup_to_new_quota_ms": 2.5}}
        md = markdown(rep)
        self.assertIn("# Bulkhead load report t: reload", md)
        self.assertIn("## reload\n\n| a | b |", md)
        self.assertEqual(to_json(rep)["studies"]["reload"]["data"],
                         {"sighup_to_new_quota_ms": 2.5})

    def test_json_is_plain_data(self):
        data = json.loads(json.dumps(to_json(report(85_000.0, 90_000.0))))
        self.assertEqual(data["floor"]["wrk"]["rps"], 100_000.0)
        self.assertEqual(data["versus"]["lean_axum"]["rps_ratio"], 0.94)
        self.assertNotIn("scenario1_note", data)  # None fields are left out


class RegistryTest(unittest.TestCase):
    def test_scenarios_run_in_registration_order_and_only_filters(self):
        self.assertEqual(list(scenarios.REGISTRY),
                         ["s2_products", "s3_orders", "s4_mix", "s5_overload", "s6_fleet",
                          "s7_events", "reload", "gateway", "fairness_gateway",
                          "gateway_failing", "access_log", "ab", "paths"])
        ran = []
        fake = {n: (lambda run, n=n: ran.append(n)) for n in scenarios.REGISTRY}
        with mock.patch.dict(scenarios.REGISTRY, fake):
            scenarios.run_registered(None, ["s4_mix", "s2_products"])
            self.assertEqual(ran, ["s2_products", "s4_mix"])
            with self.assertRaises(SystemExit) as e:
                scenarios.run_registered(None, ["s9_nothing"])
            self.assertIn("s9_nothing", str(e.exception))

    def test_opt_in_scenarios_run_only_when_named(self):
        self.assertEqual(scenarios.OPT_IN, {"s6_fleet", "s7_events", "reload", "gateway",
                                             "fairness_gateway", "gateway_failing",
                                             "access_log", "ab", "paths"})
        self.assertEqual(scenarios.selected([]),
                         ["s2_products", "s3_orders", "s4_mix", "s5_overload"])
        self.assertEqual(scenarios.selected(["reload", "s6_fleet"]), ["s6_fleet", "reload"])
        self.assertTrue(scenarios.standalone(["s7_events", "reload"]))
        self.assertFalse(scenarios.standalone(["s7_events", "s3_orders"]))
        self.assertFalse(scenarios.standalone([]))
        self.assertEqual(scenarios.NEEDS["s6_fleet"], ("nginx", "redis-server"))
        self.assertEqual(scenarios.NEEDS["s7_events"], ("nats-server",))
        for name in scenarios.REGISTRY:
            self.assertTrue(set(scenarios.NEEDS[name]) <= set(tools.SERVICES), name)

    def test_a_name_registers_once(self):
        with self.assertRaises(ValueError):
            scenarios.scenario("s2_products")(lambda run: None)


class ToolsTest(unittest.TestCase):
    def test_a_missing_tool_is_named_with_the_install_step(self):
        with tempfile.TemporaryDirectory() as empty, \
                mock.patch.dict(os.environ, {"PATH": empty, "HOME": empty}), \
                mock.patch.object(tools, "find_tool",
                                  side_effect=lambda n: "/bin/psql" if n == "psql" else None):
            with self.assertRaises(SystemExit) as e:
                tools.require_tools(["wrk", "oha"])
        msg = str(e.exception)
        self.assertIn("wrk for the closed-loop scenarios", msg)
        self.assertIn("oha for the open-loop overload scenario", msg)
        self.assertIn("load/run install-tools", msg)

    def test_settings_keep_the_defaults(self):
        st = config.settings(config.parser().parse_args(["--quick"]))
        self.assertEqual((st.duration, st.rounds, st.warmup, st.users), (3, 1, 1, 200))
        st = config.settings(config.parser().parse_args([]))
        self.assertEqual((st.duration, st.rounds, st.warmup, st.users, st.mix),
                         (20, 3, 5, 1000, [70, 20, 10]))
        self.assertEqual(config.parser().parse_args(["install-tools"]).command,
                         "install-tools")

    def test_ab_options_name_server_b(self):
        st = config.settings(config.parser().parse_args(
            ["--only", "ab", "--b-env", "BULKHEAD__LOG__LEVEL=off", "--b-binary", "/bin/true",
             "--ab-workload", "orders"]))
        self.assertEqual((st.b_env, st.b_binary, st.ab_workload),
                         ({"BULKHEAD__LOG__LEVEL": "off"}, "/bin/true", "orders"))
        with self.assertRaises(SystemExit) as e:
            config.settings(config.parser().parse_args(["--b-env", "NOVALUE"]))
        self.assertIn("--b-env takes KEY=VALUE", str(e.exception))
        with self.assertRaises(SystemExit) as e:
            config.settings(config.parser().parse_args(["--b-binary", "/nonexistent/x"]))
        self.assertIn("is not an executable file", str(e.exception))

    def test_wrk_sends_accept_encoding_only_when_asked(self):
        # The real wrk and Lua script against a server that records each request's
        # Accept-Encoding. .ci/run installs wrk.
        import http.server
        import threading
        wrk_path = tools.find_tool("wrk")
        self.assertIsNotNone(wrk_path, "wrk is missing (apt-get install wrk)")
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen.append(self.headers.get("Accept-Encoding"))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for asked in ([], ["--accept-encoding", "gzip"]):
                    st = config.settings(config.parser().parse_args(asked))
                    st.wrk, st.out = wrk_path, tmp
                    seen.clear()
                    w = generators.wrk(st, srv.server_address[1], 1,
                                       ["mode=get", "path=/x"], connections=2, cpus=None)
                    self.assertGreater(w["requests"], 0)
                    self.assertTrue(seen)
                    self.assertEqual(set(seen), {"gzip" if asked else None}, asked)
        finally:
            srv.shutdown()

    def test_pgbench_output_is_parsed_and_reported_beside_its_scenario(self):
        out = ("scaling factor: 64\nnumber of clients: 64\n"
               "number of transactions actually processed: 51234\n"
               "latency average = 24.985 ms\n"
               "tps = 2561.234567 (without initial connection time)\n")
        self.assertEqual(pgbench.parse(out, r"tps = ([\d.]+)"), 2561.234567)
        self.assertEqual(pgbench.parse(out, r"latency average = ([\d.]+) ms"), 24.985)
        with self.assertRaises(RuntimeError):
            pgbench.parse("no figures", r"tps = ([\d.]+)")
        rep = report(s1_rps=1000.0, lean_rps=900.0)
        rep.pgbench.append(PgbenchResult(
            name="pgbench_tpcb_like", mode="tpcb-like", scale=64, clients=64, threads=2,
            duration_s=20, tps=2561.2, latency_avg_ms=25.0, transactions=51234,
            beside="s3_orders"))
        rep.pgbench_ratios.append(PgbenchRatio(
            scenario="s3_orders", pgbench="tpcb-like -s 64", scenario_rps=2049.0,
            pgbench_tps=2561.2, ratio=0.8, note="median of 2"))
        md = markdown(rep)
        self.assertIn("| tpcb-like | 64 | 64 | 2,561 |", md)
        self.assertIn("| s3_orders | 2,049 | tpcb-like -s 64 | 2,561 | 0.80x |", md)
        self.assertEqual(json.loads(json.dumps(to_json(rep)))["pgbench_ratios"][0]["ratio"],
                         0.8)


    def test_the_order_script_names_only_rows_its_seed_creates(self):
        with open(pgbench.ORDER_SCRIPT) as f:
            script = f.read()
        # The ranges the script draws from are the seed's, and so are the id formulas.
        self.assertIn(r"\set uid random(1, 1000)", script)
        self.assertIn(r"\set p random(1, 200)", script)
        self.assertIn("generate_series(1, 1000)", pgbench.ORDER_SEED)
        self.assertIn("generate_series(1, 200)", pgbench.ORDER_SEED)
        for formula in ["md5(:uid::text)::uuid", "md5('p' || :p)::uuid"]:
            self.assertIn(formula, script)
        self.assertIn("md5(i::text)::uuid", pgbench.ORDER_SEED)
        self.assertIn("md5('p' || i)::uuid", pgbench.ORDER_SEED)
        # One transaction, the order's three batches' statements between BEGIN and COMMIT.
        statements = [x.strip() for x in script.split(";") if x.strip()]
        self.assertTrue(statements[0].endswith("BEGIN"), statements[0])
        self.assertEqual(statements[-1], "COMMIT")

    def test_the_list_script_reads_what_list_products_reads(self):
        with open(pgbench.LIST_SCRIPT) as f:
            script = f.read()
        with open(os.path.join(config.ROOT, "src", "store", "postgres", "products.rs")) as f:
            store = f.read()
        # The same columns, the default sort and page (20 and the one that says "more").
        columns = re.search(r'PRODUCT_COLUMNS: &str =\s*"([^"]+)"', store).group(1)
        select = " ".join(script.split("SELECT", 1)[1].split("FROM")[0].split())
        self.assertEqual(select, columns)
        self.assertIn("ORDER BY {column} {dir}, id {dir} LIMIT", store)
        self.assertIn("ORDER BY created_at DESC, id DESC", script)
        self.assertIn(r"\set lim 21", script)
        self.assertIn("WHERE deleted_at IS NULL", script)


class PureFunctionsTest(unittest.TestCase):
    def test_nginx_conf_keeps_the_fleet_file_and_points_it_at_local_instances(self):
        with open(services.FLEET_CONF) as f:
            template = f.read()
        conf = services.nginx_conf(template, [7001, 7002, 7003], 7100, "/tmp/t")
        self.assertIn("server 127.0.0.1:7001 max_fails=3 fail_timeout=5s;", conf)
        self.assertIn("server 127.0.0.1:7003 max_fails=3 fail_timeout=5s;", conf)
        self.assertNotIn("bulkhead-1:8080", conf)
        self.assertIn("listen 127.0.0.1:7100;", conf)
        self.assertNotIn("listen 8088", conf)
        for kept in ("keepalive 64;", 'proxy_set_header Connection "";',
                     "proxy_http_version 1.1;", "proxy_next_upstream"):
            self.assertIn(kept, conf)
        self.assertIn("daemon off;", conf)
        self.assertIn("pid /tmp/t/nginx.pid;", conf)
        self.assertEqual(conf.count("{"), conf.count("}"))
        with self.assertRaises(ValueError):
            services.nginx_conf("server { listen 80; }", [1], 2, "/tmp/t")

    def test_nginx_accepts_the_fleet_file(self):
        # The real nginx parses what the fleet mode runs (ops/nginx/fleet.conf with local
        # upstreams): a directive it does not know, or a misplaced one, fails here and not
        # in the middle of a load run. .ci/run installs nginx.
        nginx = tools.find_tool("nginx")
        self.assertIsNotNone(nginx, "nginx is missing (apt-get install nginx)")
        with open(services.FLEET_CONF) as f:
            template = f.read()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "nginx.conf")
            with open(path, "w") as f:
                f.write(services.nginx_conf(template, [7001, 7002, 7003], 7100, tmp))
            r = subprocess.run([nginx, "-t", "-p", tmp, "-e", os.path.join(tmp, "error.log"),
                                "-c", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("syntax is ok", r.stderr)
            # And a broken file is refused: the check is real.
            with open(path, "a") as f:
                f.write("no_such_directive on;\n")
            r = subprocess.run([nginx, "-t", "-p", tmp, "-e", os.path.join(tmp, "error.log"),
                                "-c", path], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)

    def test_gcra_reference_admits_the_burst_then_the_rate(self):
        # 10 per second, burst 10: all of a burst of 10 at t=0, none of the next 10.
        self.assertEqual(services.gcra_admitted([0.0] * 20, 10, 1), 10)
        # 5x the rate for 10 s: burst + rate x time, within one.
        times = [i / 50 for i in range(500)]
        self.assertIn(services.gcra_admitted(times, 10, 1), (109, 110, 111))
        # At the rate exactly, everything passes.
        self.assertEqual(services.gcra_admitted([i / 10 for i in range(100)], 10, 1), 100)
        self.assertEqual(services.gcra_admitted([0.0] * 5, 10, 1, burst=2), 2)

    def test_server_counted_5xx_are_split_by_code_and_only_503_passes(self):
        req = 'bulkhead_http_requests_total{method="GET",route="/api/v1/users/me",status='
        err = 'bulkhead_http_server_errors_total{route="/api/v1/users/me",code='
        before = {req + '"2xx"}': 10.0, req + '"5xx"}': 1.0, err + '"503"}': 1.0}
        after = {req + '"2xx"}': 110.0, req + '"5xx"}': 33.0, err + '"503"}': 33.0}
        self.assertEqual(status_classes(before, after), {"2xx": 100, "503": 32})
        after_500 = dict(after, **{req + '"5xx"}': 34.0, err + '"500"}': 1.0})
        self.assertEqual(status_classes(before, after_500), {"2xx": 100, "503": 32, "500": 1})
        # An older server without the per-code counter: the class stays, unverified.
        old = {k: v for k, v in after.items() if not k.startswith(err)}
        self.assertEqual(status_classes(before, old), {"2xx": 100, "5xx": 32})
        s1 = result("s1_users_me", 1.0, 1.0)
        for classes, ok, bad in [({"2xx": 100, "503": 32}, True, {}),
                                 ({"2xx": 100, "503": 32, "500": 1}, False, {"500": 1}),
                                 ({"2xx": 100, "5xx": 32}, False, {"5xx (class only)": 32})]:
            s1.server_status_classes = classes
            self.assertEqual(five_xx_check(s1), (ok, bad))

    def test_percentile_by_nearest_rank(self):
        self.assertIsNone(services.percentile([], 50))
        self.assertEqual(services.percentile(list(range(1, 101)), 99), 99)
        self.assertEqual(services.percentile(list(range(1, 101)), 50), 50)
        self.assertEqual(services.percentile([3.0], 99), 3.0)

    def test_cloudevent_time_with_nanoseconds(self):
        t = events.parse_time("2026-12-03T15:00:00.123456789Z")
        self.assertAlmostEqual(t, 1796310000.123456789, places=5)
        self.assertEqual(events.parse_time("2026-12-03T15:00:00Z"), 1796310000.0)
        self.assertEqual(events.parse_time("2026-12-03T15:00:00+00:00"), 1796310000.0)

    def test_reload_latency_is_the_first_answer_with_the_new_quota(self):
        answers = [(9.0, "1000"), (10.001, "1000"), (10.002, "1000"), (10.004, "30"),
                   (10.005, "1000"), (10.006, "30")]
        new, last_old = reload.first_change(answers, 10.0, "1000")
        self.assertAlmostEqual(new, 0.004)
        self.assertAlmostEqual(last_old, 0.002)
        self.assertEqual(reload.first_change([(9.0, "1000")], 10.0, "1000"), (None, None))
        self.assertIn("quota = 30", reload.config_text(30))


class GatewayTest(unittest.TestCase):
    def test_gateway_toml_is_the_configuration_the_scenarios_mean(self):
        text = upstreams.gateway_toml(
            [{"name": "a", "prefix": "/api/v1/a", "upstreams": ["http://127.0.0.1:1"],
              "auth": "none", "timeout_ms": 1000}],
            {"max_concurrent": 4, "queue_timeout_ms": 2000}, {"minimum_calls": 10})
        doc = tomllib.loads(text)
        self.assertGreaterEqual(len(doc["gateway"]["identity_secret"]), 32)
        self.assertEqual(doc["gateway"]["routes"], [
            {"name": "a", "prefix": "/api/v1/a", "upstreams": ["http://127.0.0.1:1"],
             "auth": "none", "timeout_ms": 1000}])
        self.assertEqual(doc["gateway"]["upstream"]["max_concurrent"], 4)
        self.assertEqual(doc["gateway"]["upstream"]["circuit"], {"minimum_calls": 10})
        self.assertNotIn("upstream", tomllib.loads(upstreams.gateway_toml([]))["gateway"])

    def test_metric_sums_match_every_label_given(self):
        text = "\n".join([
            "# TYPE bulkhead_gateway_requests_total counter",
            'bulkhead_gateway_requests_total{route="f",outcome="response"} 3',
            'bulkhead_gateway_requests_total{route="f",outcome="bad_gateway"} 4',
            'bulkhead_gateway_requests_total{route="h",outcome="response"} 100',
            'bulkhead_gateway_requests_total_other{route="f"} 9',
            'bulkhead_circuit_state{circuit="f",state="open"} 1'])
        self.assertEqual(upstreams.metric_sum(text, "bulkhead_gateway_requests_total",
                                              route="f"), 7.0)
        self.assertEqual(upstreams.metric_sum(text, "bulkhead_gateway_requests_total",
                                              route="f", outcome="bad_gateway"), 4.0)
        self.assertEqual(upstreams.metric_sum(text, "bulkhead_circuit_state", circuit="f",
                                              state="open"), 1.0)
        self.assertEqual(upstreams.metric_sum(text, "bulkhead_absent"), 0.0)

    def test_circuit_opening_is_the_first_open_sample(self):
        rows = [(0.05, 3, False), (0.10, 20, False), (0.15, 25, True), (0.2, 30, True)]
        self.assertEqual(upstreams.first_open(rows), (0.15, 25))
        self.assertEqual(upstreams.first_open(rows[:2]), (None, None))

    def test_amplification_counts_only_requests_past_the_circuit(self):
        keys = ("requests", "circuit_refused", "overloaded", "attempts", "retries",
                "retries_refused", "opened")
        before = dict.fromkeys(keys, 10.0)
        after = {"requests": 1010.0, "circuit_refused": 810.0, "overloaded": 10.0,
                 "attempts": 250.0, "retries": 50.0, "retries_refused": 160.0,
                 "opened": 11.0}
        d = gateway_failing.amplification(before, after)
        self.assertEqual(d["requests"], 1000)
        self.assertEqual(d["attempts_per_passed_request"], 1.2)  # 240 / 200
        self.assertEqual(d["retries_refused"], 150)
        self.assertIsNone(upstreams.ratio(5, 0))

    def test_the_hanging_upstream_accepts_and_never_answers(self):
        hang = upstreams.Hang()
        try:
            with socket.create_connection(("127.0.0.1", hang.port), 2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                s.settimeout(0.3)
                with self.assertRaises(socket.timeout):
                    s.recv(1)
            deadline = time.time() + 5
            while (hang.open or not hang.accepted) and time.time() < deadline:
                time.sleep(0.02)
            self.assertEqual((hang.accepted, len(hang.open)), (1, 0))  # closed with us
        finally:
            hang.stop()


if __name__ == "__main__":
    unittest.main()
