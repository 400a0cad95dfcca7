//! Account takeover through an old access token. Someone registers the email an operator
//! later configures as `auth.bootstrap_admin_email`; after the restart that promotes the
//! account, the squatter's old access token once still worked, enough to change the
//! account's password with PATCH (no current password asked) and then log in as admin.
//! Now every change of password, email or role bumps the user's token epoch, which access
//! tokens carry: older tokens are 401 at once, even one issued in the same second as the
//! change. Users changing their own password or email send `current_password`.

use base64::Engine;
use bulkhead::config::{DatabaseUrl, Secret};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::users::{fields, me, patch};
use crate::helpers::{problem, spawn_app_with, StoreKind, TestApp, TestUser};

/// The `iat` claim of an access token (read, not verified).
fn iat(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["iat"]
        .as_u64()
        .unwrap()
}

/// Over HTTP, across a restart on the same database: the squatter registered the admin
/// email before the operator configured it.
#[actix_web::test]
async fn a_squatters_token_dies_with_the_bootstrap_promotion() {
    let first = spawn_app_with(StoreKind::Postgres, |c| {
        c.auth.bootstrap_admin_email = None;
        c.auth.bootstrap_admin_password = None;
    })
    .await;
    let url = first.database_url().unwrap();
    let res = first
        .register("boss@example.com", "Squatter", "squatter-pass")
        .await;
    assert_eq!(res.status(), 201);
    let id: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (old_access, old_refresh) = first.tokens("boss@example.com", "squatter-pass").await;
    first.stop().await;

    let second = spawn_app_with(StoreKind::Postgres, |c| {
        c.database.url = Some(DatabaseUrl::new(url));
        c.auth.bootstrap_admin_email = Some("boss@example.com".into());
        c.auth.bootstrap_admin_password = Some(Secret::new("configured-pass-1"));
    })
    .await;
    // The squatter's access token no longer authenticates anything: not a read, and not
    // the password change that would lock the operator out.
    let res = second
        .authed(Method::GET, "/api/v1/users/me", &old_access)
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await;
    let res = patch(
        &second,
        &old_access,
        id,
        &json!({"password": "squatters-own-1", "current_password": "configured-pass-1"}),
    )
    .await;
    problem(res, 401, "unauthenticated").await;
    // Its refresh token and its password are gone too.
    let res = second
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": old_refresh}),
        )
        .await;
    problem(res, 401, "unauthenticated").await;
    problem(
        second.login("boss@example.com", "squatter-pass").await,
        401,
        "invalid_credentials",
    )
    .await;
    // The operator logs in as a full admin.
    let (access, _) = second.tokens("boss@example.com", "configured-pass-1").await;
    let res = second
        .authed(Method::GET, "/api/v1/users", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = second
        .authed(Method::GET, "/api/v1/users/me", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "admin");
}

/// Log in as `u` (with `password`) until the token's `iat` is `second`, or give up after
/// the second has passed; `None` then.
async fn token_in_second(
    app: &TestApp,
    u: &TestUser,
    password: &str,
    second: u64,
) -> Option<String> {
    let (token, _) = app.tokens(&u.email, password).await;
    (iat(&token) == second).then_some(token)
}

/// A password change, then an email change, each made in the same `iat` second as the
/// tokens before and after it: the older token is 401, the newer one works. Retried
/// until the change really shares the second with both tokens.
async fn credential_changes_end_older_tokens_case(app: &TestApp) {
    let mut u = app.new_user().await;
    let mut password = u.password.clone();
    let mut same_second = [false, false];
    for attempt in 0..50 {
        let email_change = attempt % 2 == 1;
        let (old, _) = app.tokens(&u.email, &password).await;
        let second = iat(&old);
        let body = if email_change {
            u.email = format!("moved-{}@example.com", Uuid::new_v4().simple());
            json!({"email": u.email, "current_password": password})
        } else {
            let next = format!("password-{attempt}-x");
            let body = json!({"password": next, "current_password": password});
            password = next;
            body
        };
        let res = patch(app, &old, u.id, &body).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let Some(new) = token_in_second(app, &u, &password, second).await else {
            continue;
        };
        let res = app
            .authed(Method::GET, "/api/v1/users/me", &old)
            .send()
            .await
            .unwrap();
        problem(res, 401, "unauthenticated").await;
        let res = app
            .authed(Method::GET, "/api/v1/users/me", &new)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        same_second[usize::from(email_change)] = true;
        if same_second == [true, true] {
            break;
        }
    }
    assert_eq!(
        same_second,
        [true, true],
        "the changes never shared an iat second with their tokens"
    );
}
mod credential_changes_end_older_tokens {
    use super::*;

    /// Two logins per attempt, mostly for one email: above the default login limit.
    async fn app(kind: StoreKind) -> TestApp {
        spawn_app_with(kind, |c| c.rate_limits.login.quota = 10_000).await
    }

    #[actix_web::test]
    async fn postgres() {
        credential_changes_end_older_tokens_case(&app(StoreKind::Postgres).await).await;
    }

    #[actix_web::test]
    async fn memory() {
        credential_changes_end_older_tokens_case(&app(StoreKind::Memory).await).await;
    }
}

/// Changing one's own password or email takes the current password; an admin changing
/// another user's does not. A wrong or missing one writes nothing.
async fn own_credentials_need_the_current_password(app: &TestApp) {
    let u = app.new_user().await;
    let path = format!("/api/v1/users/{}", u.id);
    for body in [
        json!({"password": "taken-over-1"}),
        json!({"email": "thief@example.com"}),
    ] {
        let res = patch(app, &u.token, u.id, &body).await;
        let problem_body = problem(res, 422, "validation_failed").await;
        assert_eq!(fields(&problem_body), ["current_password"]);
        let mut wrong = body.clone();
        wrong["current_password"] = json!("not-the-password");
        let res = patch(app, &u.token, u.id, &wrong).await;
        problem(res, 401, "invalid_credentials").await;
    }
    // Nothing was written: the token, the email and the password are as they were.
    let res = me(app, &u).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["email"],
        u.email.as_str()
    );
    assert_eq!(app.login(&u.email, &u.password).await.status(), 200);
    // A name change needs no password.
    let res = patch(app, &u.token, u.id, &json!({"name": "Renamed"})).await;
    assert_eq!(res.status(), 200);

    // An admin resets another user's password without knowing it; the user's old tokens
    // stop working.
    let admin = app.admin().await;
    let res = app
        .authed(Method::PATCH, &path, &admin.token)
        .json(&json!({"password": "reset-by-admin-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    problem(me(app, &u).await, 401, "unauthenticated").await;
    assert_eq!(app.login(&u.email, "reset-by-admin-1").await.status(), 200);
    // The admin's own password is theirs to prove like anyone's.
    let res = patch(
        app,
        &admin.token,
        admin.id,
        &json!({"password": "admin-new-password"}),
    )
    .await;
    problem(res, 422, "validation_failed").await;
}
both_stores!(
    own_credentials_take_the_current_password,
    own_credentials_need_the_current_password
);
