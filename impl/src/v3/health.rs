//! `grpc.health.v1.Health`, the gRPC health checking protocol, as etcd 3.4.23 serves it
//! on the client port: the server as a whole (service `""`) is `SERVING` while the
//! process serves; any other service name is unknown (Check: NotFound `unknown
//! service`; Watch: one `SERVICE_UNKNOWN` answer). A Watch sends the status, then stays
//! open (the status never changes) until the client leaves.

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use oxetcd_api::grpc_health_v1 as pb;
use pb::health_check_response::ServingStatus;
use tonic::{Request, Response, Status};

/// The Health service.
#[derive(Clone, Copy, Debug, Default)]
pub struct HealthService;

/// The status of `service`, if known.
fn status(service: &str) -> Option<ServingStatus> {
    service.is_empty().then_some(ServingStatus::Serving)
}

#[tonic::async_trait]
impl pb::health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        let status = status(&request.get_ref().service)
            .ok_or_else(|| Status::not_found("unknown service"))?;
        Ok(Response::new(pb::HealthCheckResponse {
            status: status.into(),
        }))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<pb::HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let status = status(&request.get_ref().service).unwrap_or(ServingStatus::ServiceUnknown);
        let first = pb::HealthCheckResponse {
            status: status.into(),
        };
        let stream =
            futures::stream::once(async move { Ok(first) }).chain(futures::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::health_server::Health as _;

    #[tokio::test]
    async fn the_server_is_serving_and_other_services_are_unknown() {
        let check = |service: &str| {
            HealthService.check(Request::new(pb::HealthCheckRequest {
                service: service.to_owned(),
            }))
        };
        let serving = check("").await.unwrap().into_inner();
        assert_eq!(serving.status(), ServingStatus::Serving);
        let unknown = check("etcdserverpb.KV").await.unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        assert_eq!(unknown.message(), "unknown service");

        let mut watch = HealthService
            .watch(Request::new(pb::HealthCheckRequest {
                service: "nope".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::ServiceUnknown);
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), watch.next()).await;
        assert!(more.is_err(), "the stream stays open without a change");
    }
}
