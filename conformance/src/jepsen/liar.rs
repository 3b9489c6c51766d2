//! A deliberately wrong endpoint for the tests: a gRPC KV proxy in front of a real
//! member's client port that acknowledges every `n`th Put without forwarding it (a
//! lost write the checkers must catch). Only the KV service is proxied.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use oxetcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
    kv_client::KvClient,
    kv_server::{Kv, KvServer},
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

#[derive(Debug)]
struct Liar {
    upstream: KvClient<Channel>,
    every: u64,
    puts: AtomicU64,
    last_header: Arc<AtomicI64>,
}

impl Liar {
    fn saw(&self, h: Option<&ResponseHeader>) {
        if let Some(h) = h {
            self.last_header.fetch_max(h.revision, Ordering::SeqCst);
        }
    }
}

#[tonic::async_trait]
impl Kv for Liar {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = self.upstream.clone().range(req.into_inner()).await?;
        self.saw(r.get_ref().header.as_ref());
        Ok(r)
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.every) {
            let revision = self.last_header.fetch_add(1, Ordering::SeqCst) + 1;
            return Ok(Response::new(PutResponse {
                header: Some(ResponseHeader {
                    revision,
                    ..ResponseHeader::default()
                }),
                prev_kv: None,
            }));
        }
        let r = self.upstream.clone().put(req.into_inner()).await?;
        self.saw(r.get_ref().header.as_ref());
        Ok(r)
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = self.upstream.clone().delete_range(req.into_inner()).await?;
        self.saw(r.get_ref().header.as_ref());
        Ok(r)
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = self.upstream.clone().txn(req.into_inner()).await?;
        self.saw(r.get_ref().header.as_ref());
        Ok(r)
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.upstream.clone().compact(req.into_inner()).await
    }
}

/// A running lying proxy.
#[derive(Debug)]
pub struct LyingProxy {
    /// Its client URL.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for LyingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy to `upstream` (a client URL) that drops every `every`th Put.
pub async fn start(upstream: &str, every: u64) -> Result<LyingProxy, String> {
    let channel = tonic::transport::Endpoint::from_shared(upstream.to_owned())
        .map_err(|e| e.to_string())?
        .connect_lazy();
    let liar = Liar {
        upstream: KvClient::new(channel),
        every: every.max(1),
        puts: AtomicU64::new(0),
        last_header: Arc::new(AtomicI64::new(0)),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(KvServer::new(liar))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok(LyingProxy { url, task })
}
