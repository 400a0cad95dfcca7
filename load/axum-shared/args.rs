//! The command line of both axum baselines: hand-parsed like `load/floor`, to keep the
//! baselines' dependencies to what they measure.

pub struct Args {
    pub bind: String,
    pub workers: usize,
    pub database_url: Option<String>,
    pub jwt_secret: Option<String>,
    pub user_quota: u32,
    pub user_window_secs: u64,
    pub pool_size: usize,
}

pub fn usage(name: &str) -> ! {
    eprintln!(
        "usage: {name} --database-url URL --jwt-secret S \
         [--bind ADDR (127.0.0.1:8082)] [--workers N (0 = cores)] \
         [--user-quota N (1000000000)] [--user-window-secs N (60)] [--pool-size N (16)]"
    );
    std::process::exit(2);
}

pub fn parse_args(name: &str) -> Args {
    let mut args = Args {
        bind: "127.0.0.1:8082".into(),
        workers: 0,
        database_url: None,
        jwt_secret: None,
        // As the load harness configures Bulkhead: the limiter runs, it never says no.
        user_quota: 1_000_000_000,
        user_window_secs: 60,
        pool_size: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(name));
        match flag.as_str() {
            "--bind" => args.bind = value(),
            "--workers" => args.workers = value().parse().unwrap_or_else(|_| usage(name)),
            "--database-url" => args.database_url = Some(value()),
            "--jwt-secret" => args.jwt_secret = Some(value()),
            "--user-quota" => args.user_quota = value().parse().unwrap_or_else(|_| usage(name)),
            "--user-window-secs" => {
                args.user_window_secs = value().parse().unwrap_or_else(|_| usage(name))
            }
            "--pool-size" => args.pool_size = value().parse().unwrap_or_else(|_| usage(name)),
            _ => usage(name),
        }
    }
    if args.user_quota == 0 || args.user_window_secs == 0 || args.pool_size == 0 {
        usage(name);
    }
    args
}
