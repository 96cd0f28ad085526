//! `Watch*` messages written from a view encoded once per published frame.
//!
//! The generated server would clone each frame's view and encode it again for every stream:
//! with a thousand wallboards on a team, that is a thousand copies of the same bytes ten times
//! a second. Here the topic encodes the view once ([`Frame::encoded`]) and each stream writes
//! a few bytes of its own (the update's kind) followed by those shared bytes, which is exactly
//! the protobuf encoding of `SiteUpdate`, `TeamUpdate` and `QueueUpdate` (field 1: kind,
//! field 2: view). [`SupervisionRoutes`] serves the three `Watch*` methods this way and hands
//! every other call to the generated server.

use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};
use futures::future::BoxFuture;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use vigie_proto::v1 as pb;
use vigie_proto::v1::supervision_server::SupervisionServer;

use crate::hub::Frame;
use crate::read::Target;
use crate::service::{SupervisionService, UpdateStream};

/// One `Watch*` message: its kind, and the frame's shared encoding of the view.
#[derive(Clone, Debug)]
pub struct EncodedUpdate {
    kind: pb::UpdateKind,
    view: Bytes,
}

impl EncodedUpdate {
    /// The message for `frame` sent as `kind`.
    pub fn of(kind: pb::UpdateKind, frame: &Frame) -> Option<EncodedUpdate> {
        Some(EncodedUpdate {
            kind,
            view: frame.encoded.clone(),
        })
    }

    /// Writes the message as protobuf: `kind` (field 1, varint), then `view` (field 2,
    /// length-delimited), the encoding of `{Site,Team,Queue}Update`.
    fn write(&self, out: &mut impl BufMut) {
        let kind = self.kind as i32;
        if kind != 0 {
            prost::encoding::int32::encode(1, &kind, out);
        }
        prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, out);
        prost::encoding::encode_varint(self.view.len() as u64, out);
        out.put_slice(&self.view);
    }
}

/// Decodes a request with prost, encodes [`EncodedUpdate`]s as they are.
#[derive(Debug)]
pub struct SharedFrameCodec<R>(PhantomData<R>);

impl<R> Default for SharedFrameCodec<R> {
    fn default() -> Self {
        SharedFrameCodec(PhantomData)
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for SharedFrameCodec<R> {
    type Encode = EncodedUpdate;
    type Decode = R;
    type Encoder = UpdateEncoder;
    type Decoder = RequestDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        UpdateEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// See [`SharedFrameCodec`].
#[derive(Debug)]
pub struct UpdateEncoder;

impl Encoder for UpdateEncoder {
    type Item = EncodedUpdate;
    type Error = Status;

    fn encode(&mut self, item: EncodedUpdate, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write(dst);
        Ok(())
    }
}

/// See [`SharedFrameCodec`].
#[derive(Debug)]
pub struct RequestDecoder<R>(PhantomData<R>);

impl<R: prost::Message + Default> Decoder for RequestDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("malformed request: {error}")))
    }
}

/// The `Supervision` service with its `Watch*` methods writing shared frames.
#[derive(Clone, Debug)]
pub struct SupervisionRoutes {
    generated: SupervisionServer<SupervisionService>,
    service: SupervisionService,
    max_request_bytes: usize,
    max_response_bytes: usize,
}

impl SupervisionRoutes {
    /// Routes for `service`, with the server's message size limits.
    pub fn new(
        service: SupervisionService,
        max_request_bytes: usize,
        max_response_bytes: usize,
    ) -> SupervisionRoutes {
        SupervisionRoutes {
            generated: SupervisionServer::new(service.clone())
                .max_decoding_message_size(max_request_bytes)
                .max_encoding_message_size(max_response_bytes),
            service,
            max_request_bytes,
            max_response_bytes,
        }
    }

    fn stream<R, H, B>(
        &self,
        handler: H,
        request: http::Request<B>,
    ) -> BoxFuture<'static, Result<http::Response<tonic::body::Body>, std::convert::Infallible>>
    where
        R: prost::Message + Default + Send + 'static,
        H: ServerStreamingService<R, Response = EncodedUpdate> + Send + 'static,
        H::ResponseStream: Send + 'static,
        H::Future: Send,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let limits = (Some(self.max_request_bytes), Some(self.max_response_bytes));
        Box::pin(async move {
            let mut grpc = Grpc::new(SharedFrameCodec::<R>::default())
                .apply_max_message_size_config(limits.0, limits.1);
            Ok(grpc.server_streaming(handler, request).await)
        })
    }
}

/// One `Watch*` method served with shared frames.
#[derive(Clone, Debug)]
struct WatchHandler {
    service: SupervisionService,
    method: &'static str,
}

macro_rules! watch_handler {
    ($request:ty, $target:expr) => {
        impl ServerStreamingService<$request> for WatchHandler {
            type Response = EncodedUpdate;
            type ResponseStream = UpdateStream<EncodedUpdate>;
            type Future = BoxFuture<'static, Result<Response<UpdateStream<EncodedUpdate>>, Status>>;

            fn call(&mut self, request: Request<$request>) -> Self::Future {
                let (service, method) = (self.service.clone(), self.method);
                Box::pin(async move {
                    let message = request.get_ref().clone();
                    let (site, target, window) = $target(message)?;
                    service
                        .watch(method, &request, site, target, window, EncodedUpdate::of)
                        .await
                })
            }
        }
    };
}

fn required(field: &str, value: String) -> Result<String, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(value)
    }
}

watch_handler!(pb::WatchSiteRequest, |m: pb::WatchSiteRequest| {
    Ok::<_, Status>((required("site", m.site)?, Target::Site, m.window))
});
watch_handler!(pb::WatchTeamRequest, |m: pb::WatchTeamRequest| {
    Ok::<_, Status>((
        required("site", m.site)?,
        Target::Team(required("team", m.team)?),
        m.window,
    ))
});
watch_handler!(pb::WatchQueueRequest, |m: pb::WatchQueueRequest| {
    Ok::<_, Status>((
        required("site", m.site)?,
        Target::Queue(required("queue", m.queue)?),
        m.window,
    ))
});

impl<B> Service<http::Request<B>> for SupervisionRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let handler = |method| WatchHandler {
            service: self.service.clone(),
            method,
        };
        match request.uri().path() {
            "/vigie.v1.Supervision/WatchSite" => {
                self.stream::<pb::WatchSiteRequest, _, _>(handler("WatchSite"), request)
            }
            "/vigie.v1.Supervision/WatchTeam" => {
                self.stream::<pb::WatchTeamRequest, _, _>(handler("WatchTeam"), request)
            }
            "/vigie.v1.Supervision/WatchQueue" => {
                self.stream::<pb::WatchQueueRequest, _, _>(handler("WatchQueue"), request)
            }
            _ => self.generated.call(request),
        }
    }
}

impl NamedService for SupervisionRoutes {
    const NAME: &'static str = "vigie.v1.Supervision";
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_shared_frame_encodes_as_the_update_message() {
        let view = pb::TeamView {
            header: Some(pb::ViewHeader {
                site: "paris".into(),
                seq: 42,
                complete: true,
                ..pb::ViewHeader::default()
            }),
            team: Some(pb::Team {
                team: "team-a".into(),
                members: vec!["a1".into(), "a2".into()],
                ..pb::Team::default()
            }),
            ..pb::TeamView::default()
        };
        let frame = Frame {
            number: 1,
            view: crate::read::WireView::Team(view.clone()),
            encoded: Bytes::from(view.encode_to_vec()),
        };
        for kind in [
            pb::UpdateKind::Snapshot,
            pb::UpdateKind::Change,
            pb::UpdateKind::Resync,
        ] {
            let mut bytes = Vec::new();
            EncodedUpdate::of(kind, &frame).unwrap().write(&mut bytes);
            let expected = pb::TeamUpdate {
                kind: kind.into(),
                view: Some(view.clone()),
            };
            assert_eq!(bytes, expected.encode_to_vec(), "{kind:?}");
            assert_eq!(pb::TeamUpdate::decode(&bytes[..]).unwrap(), expected);
        }
    }
}
