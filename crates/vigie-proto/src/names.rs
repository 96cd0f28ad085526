//! The contract's spellings of the generated enums, and their core counterparts.

use crate::v1::{Channel, EventType};

impl EventType {
    /// Every event type of the contract, in the order of the `EVENT_TYPES` list of
    /// `vigie-core` (documentation order).
    pub const KNOWN: [EventType; 14] = [
        EventType::ContactQueued,
        EventType::ContactOffered,
        EventType::ContactMissed,
        EventType::ContactAnswered,
        EventType::ContactHeld,
        EventType::ContactResumed,
        EventType::ContactTransferred,
        EventType::ContactAbandoned,
        EventType::ContactDequeued,
        EventType::ContactEnded,
        EventType::ContactCompleted,
        EventType::AdvisorLogin,
        EventType::AdvisorLogout,
        EventType::AdvisorState,
    ];

    /// The contract's spelling (`contact.queued`); `None` for [`EventType::Unspecified`].
    pub fn contract_name(self) -> Option<&'static str> {
        Some(match self {
            EventType::Unspecified => return None,
            EventType::ContactQueued => "contact.queued",
            EventType::ContactOffered => "contact.offered",
            EventType::ContactMissed => "contact.missed",
            EventType::ContactAnswered => "contact.answered",
            EventType::ContactHeld => "contact.held",
            EventType::ContactResumed => "contact.resumed",
            EventType::ContactTransferred => "contact.transferred",
            EventType::ContactAbandoned => "contact.abandoned",
            EventType::ContactDequeued => "contact.dequeued",
            EventType::ContactEnded => "contact.ended",
            EventType::ContactCompleted => "contact.completed",
            EventType::AdvisorLogin => "advisor.login",
            EventType::AdvisorLogout => "advisor.logout",
            EventType::AdvisorState => "advisor.state",
        })
    }

    /// The type spelled `name` in the contract (`contact.queued`), if it is one.
    pub fn from_contract_name(name: &str) -> Option<EventType> {
        EventType::KNOWN
            .into_iter()
            .find(|known| known.contract_name() == Some(name))
    }
}

impl Channel {
    /// The core channel; `None` for [`Channel::Unspecified`].
    pub fn to_core(self) -> Option<vigie_core::Channel> {
        Some(match self {
            Channel::Unspecified => return None,
            Channel::Voice => vigie_core::Channel::Voice,
            Channel::Chat => vigie_core::Channel::Chat,
            Channel::Email => vigie_core::Channel::Email,
            Channel::Callback => vigie_core::Channel::Callback,
            Channel::Social => vigie_core::Channel::Social,
            Channel::Task => vigie_core::Channel::Task,
        })
    }
}

impl From<vigie_core::Channel> for Channel {
    fn from(channel: vigie_core::Channel) -> Channel {
        match channel {
            vigie_core::Channel::Voice => Channel::Voice,
            vigie_core::Channel::Chat => Channel::Chat,
            vigie_core::Channel::Email => Channel::Email,
            vigie_core::Channel::Callback => Channel::Callback,
            vigie_core::Channel::Social => Channel::Social,
            vigie_core::Channel::Task => Channel::Task,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_are_the_contract_types_in_order() {
        let names: Vec<_> = EventType::KNOWN
            .iter()
            .map(|known| known.contract_name().unwrap())
            .collect();
        assert_eq!(names, vigie_core::decode::EVENT_TYPES);
        for (known, name) in EventType::KNOWN.iter().zip(vigie_core::decode::EVENT_TYPES) {
            assert_eq!(EventType::from_contract_name(name), Some(*known));
        }
        assert_eq!(EventType::Unspecified.contract_name(), None);
        assert_eq!(EventType::from_contract_name("contact.teleported"), None);
    }

    #[test]
    fn every_core_channel_maps_to_a_value_and_back() {
        for &channel in vigie_core::Channel::ALL {
            let proto = Channel::from(channel);
            assert_ne!(proto, Channel::Unspecified);
            assert_eq!(proto.to_core(), Some(channel));
            // The protobuf value name is the contract's spelling, upper-cased and prefixed.
            assert_eq!(
                proto.as_str_name(),
                format!("CHANNEL_{}", channel.as_str().to_uppercase())
            );
        }
        assert_eq!(Channel::Unspecified.to_core(), None);
    }

    #[test]
    fn event_type_value_names_spell_the_contract_types() {
        for known in EventType::KNOWN {
            let name = known.contract_name().unwrap();
            assert_eq!(
                known.as_str_name(),
                format!("EVENT_TYPE_{}", name.replace('.', "_").to_uppercase())
            );
        }
    }
}
