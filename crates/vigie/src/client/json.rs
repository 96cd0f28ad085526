//! Messages of the API as the canonical proto3 JSON mapping, the form grpcurl and every
//! protobuf runtime print: lowerCamelCase field names, enums by name, 64-bit integers as
//! strings, timestamps in RFC 3339.
//!
//! The mapping is driven by the descriptors compiled with the generated code
//! ([`vigie_proto::FILE_DESCRIPTOR_SET`]), so it follows the `.proto` files without a line of
//! hand-written conversion. Fields at their default value (0, false, empty) are written out, as
//! `grpcurl -emit-defaults` does, so that a script reads `"complete": false` rather than
//! nothing; an unset `optional` indicator (undefined) is absent, never 0.

use std::sync::OnceLock;

use anyhow::Context as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use vigie_proto::v1 as pb;

/// A generated message with its fully qualified protobuf name.
pub trait ProtoName: prost::Message {
    /// `vigie.v1.TeamView`...
    const FULL_NAME: &'static str;
}

macro_rules! proto_names {
    ($($message:ident),* $(,)?) => {
        $(impl ProtoName for pb::$message {
            const FULL_NAME: &'static str = concat!("vigie.v1.", stringify!($message));
        })*
    };
}

proto_names!(
    ListSitesResponse,
    ListTeamsResponse,
    ListQueuesResponse,
    ListAdvisorsResponse,
    SiteView,
    TeamView,
    QueueView,
    AdvisorView,
    SiteUpdate,
    TeamUpdate,
    QueueUpdate,
);

/// The descriptors of `vigie.v1` and their imports, decoded once.
fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(vigie_proto::FILE_DESCRIPTOR_SET).map_err(|error| error.to_string())
    })
    .as_ref()
    .map_err(|error| anyhow::anyhow!("the compiled protobuf descriptors do not decode: {error}"))
}

/// `message` as canonical proto3 JSON, its fields in the order of the `.proto` file: indented
/// when `pretty`, else on one line.
pub fn to_json<M: ProtoName>(message: &M, pretty: bool) -> anyhow::Result<String> {
    let descriptor = pool()?
        .get_message_by_name(M::FULL_NAME)
        .with_context(|| format!("no descriptor for {}", M::FULL_NAME))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("cannot re-read a {} as JSON", M::FULL_NAME))?;
    let options = SerializeOptions::new().skip_default_fields(false);
    let mut out = Vec::new();
    let written = if pretty {
        dynamic.serialize_with_options(&mut serde_json::Serializer::pretty(&mut out), &options)
    } else {
        dynamic.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
    };
    written.with_context(|| format!("cannot write a {} as JSON", M::FULL_NAME))?;
    String::from_utf8(out).context("serde_json wrote something that is not UTF-8")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_team_view_follows_the_canonical_mapping() {
        let view = pb::TeamView {
            header: Some(pb::ViewHeader {
                site: "paris".to_owned(),
                window: pb::Window::Window15m as i32,
                as_of: Some(prost_types::Timestamp {
                    seconds: 1_772_456_707,
                    nanos: 250_000_000,
                }),
                seq: 42,
                complete: false,
                incomplete_reason: "replaying".to_owned(),
                instance: "vigie-1".to_owned(),
            }),
            team: Some(pb::Team {
                team: "t1".to_owned(),
                indicators: Some(pb::GroupIndicators {
                    flow: Some(pb::FlowIndicators {
                        offered: 3,
                        service_level: Some(0.0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            queue_targets: Vec::new(),
            advisors: vec![pb::Advisor {
                advisor: "a1".to_owned(),
                state: pb::LiveState::OnHold as i32,
                ..Default::default()
            }],
        };
        let text = to_json(&view, false).unwrap();
        assert!(!text.contains('\n'), "{text}");
        // Fields come in the order of the .proto file, as grpcurl prints them.
        assert!(
            text.starts_with(r#"{"header":{"site":"paris","window":"WINDOW_15M""#),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["header"],
            json!({
                "site": "paris",
                "window": "WINDOW_15M",
                "asOf": "2026-03-02T13:05:07.250Z",
                "seq": "42",
                "complete": false,
                "incompleteReason": "replaying",
                "instance": "vigie-1",
            })
        );
        let flow = &value["team"]["indicators"]["flow"];
        assert_eq!(flow["offered"], json!("3"));
        // Defined as 0 is written; undefined is absent.
        assert_eq!(flow["serviceLevel"], json!(0.0));
        assert!(flow.get("abandonRate").is_none(), "{flow}");
        assert_eq!(value["advisors"][0]["state"], json!("LIVE_STATE_ON_HOLD"));
        assert!(value["advisors"][0].get("timeInState").is_none());
    }

    #[test]
    fn every_named_message_has_a_descriptor() {
        fn check<M: ProtoName + Default>() {
            to_json(&M::default(), true).unwrap();
        }
        check::<pb::ListSitesResponse>();
        check::<pb::ListTeamsResponse>();
        check::<pb::ListQueuesResponse>();
        check::<pb::ListAdvisorsResponse>();
        check::<pb::SiteView>();
        check::<pb::TeamView>();
        check::<pb::QueueView>();
        check::<pb::AdvisorView>();
        check::<pb::SiteUpdate>();
        check::<pb::TeamUpdate>();
        check::<pb::QueueUpdate>();
    }
}
