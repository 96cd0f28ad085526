//! What the integration tests of the core compare processors by.

use vigie_core::{ProcessorStats, SiteProcessor, Window};

/// Everything a reader sees of a processor now.
#[derive(Debug, PartialEq)]
pub struct Seen {
    pub views: Vec<serde_json::Value>,
    pub stats: ProcessorStats,
    /// Contacts, their events, remembered contacts, event ids, queue and advisor items.
    pub memory: [usize; 6],
}

pub fn seen(p: &SiteProcessor) -> Seen {
    let items = p.memory_items();
    Seen {
        views: Window::ALL
            .iter()
            .map(|window| serde_json::to_value(p.site_view(*window)).expect("views encode"))
            .collect(),
        stats: p.stats(),
        memory: [
            items.contacts,
            items.contact_events,
            items.completed_contacts,
            items.event_ids,
            items.queue_entries,
            items.advisor_items,
        ],
    }
}
