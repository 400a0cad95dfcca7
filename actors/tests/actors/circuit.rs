use std::time::Duration;

use bulkhead_actors::{ActorError, Circuit, CircuitConfig, CircuitState, Outcome, WindowKind};

fn cfg() -> CircuitConfig {
    CircuitConfig {
        window: WindowKind::Count,
        window_size: 10,
        minimum_calls: 4,
        failure_rate_threshold: 0.5,
        slow_call_rate_threshold: 0.5,
        slow_call_duration_ms: 1_000,
        open_wait_ms: 5_000,
        half_open_trial_calls: 2,
        half_open_timeout_ms: 3_000,
    }
}

fn start(cfg: CircuitConfig) -> Circuit {
    tokio::time::pause();
    Circuit::start("postgres", cfg).unwrap()
}

fn call(c: &Circuit, outcome: Outcome) {
    c.try_acquire().expect("admitted").record(outcome);
}

fn trip(c: &Circuit) {
    for _ in 0..4 {
        call(c, Outcome::Failure);
    }
    assert_eq!(c.state(), CircuitState::Open);
}

async fn half_open(c: &Circuit) {
    trip(c);
    tokio::time::advance(Duration::from_millis(5_000)).await;
}

#[actix_rt::test]
async fn minimum_calls_then_failure_rate_trips() {
    let c = start(cfg());
    for _ in 0..3 {
        call(&c, Outcome::Failure);
    }
    assert_eq!(
        c.state(),
        CircuitState::Closed,
        "below minimum_calls no rate is computed"
    );
    call(&c, Outcome::Failure);
    assert_eq!(c.state(), CircuitState::Open);
    match c.try_acquire() {
        Err(ActorError::CircuitOpen { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(5))
        }
        other => panic!("expected CircuitOpen, got {:?}", other.err()),
    }
}

#[actix_rt::test]
async fn below_threshold_stays_closed() {
    let c = start(cfg());
    for i in 0..10 {
        call(
            &c,
            if i >= 6 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
        );
    }
    assert_eq!(c.state(), CircuitState::Closed); // 4 of 10 failed: 40% < 50%
}

#[actix_rt::test]
async fn half_open_admits_exactly_n_and_a_cancelled_trial_frees_its_slot() {
    let c = start(cfg());
    half_open(&c).await;
    let first = c.try_acquire().expect("trial 1");
    let second = c.try_acquire().expect("trial 2");
    assert!(first.is_trial() && second.is_trial());
    assert_eq!(c.state(), CircuitState::HalfOpen);
    assert!(matches!(
        c.try_acquire(),
        Err(ActorError::CircuitOpen { .. })
    ));
    drop(first); // cancelled: not counted, slot freed
    let third = c.try_acquire().expect("freed slot");
    assert!(matches!(
        c.try_acquire(),
        Err(ActorError::CircuitOpen { .. })
    ));
    third.record(Outcome::Success);
    second.record(Outcome::Success);
    assert_eq!(c.state(), CircuitState::Closed);
}

#[actix_rt::test]
async fn a_failed_trial_reopens() {
    let c = start(cfg());
    half_open(&c).await;
    let (a, b) = (c.try_acquire().unwrap(), c.try_acquire().unwrap());
    a.record(Outcome::Success);
    b.record(Outcome::Failure);
    assert_eq!(c.state(), CircuitState::Open);
    assert!(c.try_acquire().is_err());
}

#[actix_rt::test]
async fn ignored_trials_do_not_count_and_free_their_slot() {
    let c = start(cfg());
    half_open(&c).await;
    c.try_acquire().unwrap().record(Outcome::Ignored);
    c.try_acquire().unwrap().record(Outcome::Ignored);
    assert_eq!(c.state(), CircuitState::HalfOpen);
    call(&c, Outcome::Success);
    call(&c, Outcome::Success);
    assert_eq!(c.state(), CircuitState::Closed);
}

#[actix_rt::test]
async fn stuck_half_open_returns_to_open_after_its_timeout() {
    let c = start(cfg());
    half_open(&c).await;
    let stuck = c.try_acquire().unwrap();
    tokio::time::advance(Duration::from_millis(3_000)).await;
    assert!(matches!(
        c.try_acquire(),
        Err(ActorError::CircuitOpen { .. })
    ));
    assert_eq!(c.state(), CircuitState::Open);
    // The late trial's result belongs to a past epoch: it changes nothing.
    stuck.record(Outcome::Success);
    assert_eq!(c.state(), CircuitState::Open);
    // The ticker actor moves an idle circuit along without any call.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    assert_eq!(c.state(), CircuitState::HalfOpen);
}

#[actix_rt::test]
async fn slow_calls_trip() {
    let c = start(cfg());
    for _ in 0..4 {
        let p = c.try_acquire().unwrap();
        tokio::time::advance(Duration::from_millis(1_000)).await;
        p.record(Outcome::Success);
    }
    assert_eq!(c.state(), CircuitState::Open);
}

#[actix_rt::test]
async fn ignored_and_cancelled_calls_are_not_failures() {
    let c = start(cfg());
    for _ in 0..20 {
        call(&c, Outcome::Ignored);
        drop(c.try_acquire().unwrap());
    }
    for _ in 0..3 {
        call(&c, Outcome::Failure);
    }
    assert_eq!(c.state(), CircuitState::Closed, "only 3 counted calls");
}

#[actix_rt::test]
async fn time_window_forgets_old_calls() {
    let c = start(CircuitConfig {
        window: WindowKind::Time,
        window_size: 10,
        ..cfg()
    });
    call(&c, Outcome::Failure);
    call(&c, Outcome::Failure);
    tokio::time::advance(Duration::from_secs(11)).await;
    call(&c, Outcome::Failure);
    call(&c, Outcome::Failure);
    assert_eq!(
        c.state(),
        CircuitState::Closed,
        "the first two fell out of the window"
    );
    call(&c, Outcome::Failure);
    call(&c, Outcome::Failure);
    assert_eq!(c.state(), CircuitState::Open);
}

#[actix_rt::test]
async fn call_helper_classifies() {
    let c = start(cfg());
    let classify = |r: &Result<u32, &str>| match r {
        Ok(_) => Outcome::Success,
        Err(e) if e.starts_with("4") => Outcome::Ignored,
        Err(_) => Outcome::Failure,
    };
    for _ in 0..10 {
        assert_eq!(
            c.call(async { Err::<u32, _>("404") }, classify)
                .await
                .unwrap(),
            Err("404")
        );
    }
    assert_eq!(c.state(), CircuitState::Closed);
    for _ in 0..4 {
        let _ = c
            .call(async { Err::<u32, _>("db down") }, classify)
            .await
            .unwrap();
    }
    assert!(matches!(
        c.call(async { Ok(1) }, classify).await,
        Err(ActorError::CircuitOpen { .. })
    ));
}

/// A reload's thresholds apply to the next call; its open wait counts from the trip.
#[actix_rt::test]
async fn reconfigured_thresholds_and_waits_apply_at_once() {
    let c = start(cfg());
    for _ in 0..2 {
        call(&c, Outcome::Failure);
    }
    c.reconfigure(CircuitConfig {
        minimum_calls: 3,
        open_wait_ms: 1_000,
        ..cfg()
    })
    .unwrap();
    call(&c, Outcome::Failure);
    assert_eq!(c.state(), CircuitState::Open, "3 calls now make a rate");
    tokio::time::advance(Duration::from_millis(1_000)).await;
    assert!(c.try_acquire().is_ok(), "half-open after the new 1 s wait");
    let bad = c.reconfigure(CircuitConfig {
        failure_rate_threshold: 2.0,
        ..cfg()
    });
    assert!(bad
        .unwrap_err()
        .contains("circuits.postgres.failure_rate_threshold"));
}
