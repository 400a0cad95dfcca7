//! The authenticated caller of a request (set by `middleware::authenticate`) and the
//! extractors handlers take it with.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use uuid::Uuid;

use crate::domain::user::Role;
use crate::error::ApiError;
use crate::service::CachedUser;

/// The authenticated, active caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: Uuid,
    pub role: Role,
    /// The cached user, ready to serve (`GET /users/me`).
    pub user: Arc<CachedUser>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 `forbidden` unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Whether the caller may see or act on resources of `owner` (self or admin).
    pub fn may_act_for(&self, owner: Uuid) -> bool {
        self.is_admin() || self.id == owner
    }
}

/// Extractor: the caller, or 401 `unauthenticated`.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::unauthenticated("authentication required")),
        )
    }
}

/// Extractor for routes open to anonymous callers.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(MaybeCaller(req.extensions().get::<Caller>().cloned())))
    }
}

/// Extractor: an authenticated admin; 401 anonymous, 403 anyone else. Put it first in a
/// handler's arguments so a non-admin learns nothing from body validation.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"));
        ready(caller.and_then(|c| c.require_admin().map(|()| Admin)))
    }
}
