//! A hash table keyed by 128-bit hashes, for the tables whose entries come and go all day
//! (contacts, event ids).
//!
//! The keys are hashes already (XXH3-128 of ids), so their low bits place them directly. Open
//! addressing with Robin Hood insertion and backward-shift deletion leaves no tombstones: a
//! table whose entries are replaced all day keeps the size its busiest moment needs (between
//! 2/5 and 4/5 full), where a general-purpose table under such churn grows to four times its
//! entries. Entries sit in one array, so a lookup usually reads one or two cache lines.
//!
//! A table is encoded (serde, for snapshots) slot by slot: restored, it holds every entry in
//! the same slot, so it behaves, and iterates, exactly as the one saved.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The key that marks an empty slot. Keys are stored with their top bit set, so none is empty
/// (two keys differing only there share a slot: probability 2^-127 per key, below the hashes'
/// own collisions). The low bits, which place keys, are kept.
const EMPTY: u128 = 0;

/// The smallest table allocated.
const MIN_SLOTS: usize = 16;

fn stored(key: u128) -> u128 {
    key | 1 << 127
}

/// A map from 128-bit hashes to `V` (`V::default()` fills empty slots).
#[derive(Clone, Debug)]
pub(crate) struct HashTable<V> {
    /// A power of two of slots (or none).
    slots: Vec<(u128, V)>,
    len: usize,
}

/// Where the search for an absent key stopped (see [`HashTable::find_or_vacancy`]): valid
/// until the table changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vacancy {
    index: usize,
    distance: usize,
}

impl<V> Default for HashTable<V> {
    fn default() -> HashTable<V> {
        HashTable {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V: Default> HashTable<V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (for memory accounting).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// How far an entry of key `key` in slot `index` sits from its home slot.
    fn distance(index: usize, key: u128, mask: usize) -> usize {
        index.wrapping_sub(key as usize) & mask
    }

    /// The slot of `key`, if present.
    pub(crate) fn find(&self, key: u128) -> Option<usize> {
        self.find_or_vacancy(key).ok()
    }

    /// The slot of `key` if present, else where the search for it stopped: the place
    /// [`HashTable::insert_at`] inserts it, with no probing again.
    pub(crate) fn find_or_vacancy(&self, key: u128) -> Result<usize, Vacancy> {
        let key = stored(key);
        let slots = self.slots.as_slice();
        let mask = slots.len().wrapping_sub(1);
        let mut index = key as usize & mask;
        let mut distance = 0;
        loop {
            // No slot at all when nothing was ever inserted.
            let Some(&(slot, _)) = slots.get(index & mask) else {
                return Err(Vacancy {
                    index: 0,
                    distance: 0,
                });
            };
            if slot == key {
                return Ok(index & mask);
            }
            // Robin Hood order: past an entry closer to its home than we are, the key is absent.
            if slot == EMPTY || HashTable::<V>::distance(index, slot, mask) < distance {
                return Err(Vacancy {
                    index: index & mask,
                    distance,
                });
            }
            index += 1;
            distance += 1;
        }
    }

    /// Asks for the memory where `key` is looked up (a hint: see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self, key: u128) {
        let home = stored(key) as usize & self.mask();
        crate::prefetch::line(self.slots.as_ptr().wrapping_add(home));
    }

    /// The value in slot `index` (from [`HashTable::find`] or [`HashTable::insert_absent`],
    /// with no insertion or removal since).
    pub(crate) fn slot(&self, index: usize) -> &V {
        &self.slots[index].1
    }

    /// See [`HashTable::slot`].
    pub(crate) fn slot_mut(&mut self, index: usize) -> &mut V {
        &mut self.slots[index].1
    }

    #[cfg(test)]
    pub(crate) fn contains_key(&self, key: u128) -> bool {
        self.find(key).is_some()
    }

    pub(crate) fn get(&self, key: u128) -> Option<&V> {
        self.find(key).map(|index| &self.slots[index].1)
    }

    pub(crate) fn get_mut(&mut self, key: u128) -> Option<&mut V> {
        self.find(key).map(|index| &mut self.slots[index].1)
    }

    /// Inserts or replaces.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, key: u128, value: V) {
        match self.find(key) {
            Some(index) => self.slots[index].1 = value,
            None => {
                self.insert_absent(key, value);
            }
        }
    }

    /// Inserts a key known to be absent; returns its slot.
    pub(crate) fn insert_absent(&mut self, key: u128, value: V) -> usize {
        let home = Vacancy {
            index: stored(key) as usize & self.mask(),
            distance: 0,
        };
        self.insert_at(home, key, value)
    }

    /// Inserts a key known to be absent from where [`HashTable::find_or_vacancy`] found it
    /// missing, the table unchanged since (or from its home slot, at distance 0); returns its
    /// slot.
    pub(crate) fn insert_at(&mut self, vacancy: Vacancy, key: u128, value: V) -> usize {
        debug_assert!(self.find(key).is_none(), "inserting a key already present");
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            // Growing moves every entry: start again from the key's new home.
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
            return self.insert_absent(key, value);
        }
        self.len += 1;
        let mask = self.mask();
        let mut carried = (stored(key), value);
        let Vacancy {
            mut index,
            mut distance,
        } = vacancy;
        debug_assert_eq!(
            index.wrapping_sub(distance) & mask,
            carried.0 as usize & mask,
            "a vacancy lies `distance` slots after the key's home"
        );
        let mut placed = None;
        loop {
            let resident = self.slots[index].0;
            if resident == EMPTY {
                self.slots[index] = carried;
                return placed.unwrap_or(index);
            }
            let resident = HashTable::<V>::distance(index, resident, mask);
            if resident < distance {
                // Take the slot from an entry closer to its home, and carry that one on.
                std::mem::swap(&mut self.slots[index], &mut carried);
                placed.get_or_insert(index);
                distance = resident;
            }
            index = (index + 1) & mask;
            distance += 1;
        }
    }

    pub(crate) fn remove(&mut self, key: u128) -> Option<V> {
        let mut index = self.find(key)?;
        let (_, value) = std::mem::take(&mut self.slots[index]);
        self.len -= 1;
        // Shift the entries that follow back by one, up to an empty slot or an entry at home.
        let mask = self.mask();
        loop {
            let next = (index + 1) & mask;
            let key = self.slots[next].0;
            if key == EMPTY || HashTable::<V>::distance(next, key, mask) == 0 {
                break;
            }
            self.slots.swap(index, next);
            index = next;
        }
        if self.slots.len() > MIN_SLOTS && self.len * 10 < self.slots.len() {
            self.resize(self.slots.len() / 2);
        }
        Some(value)
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(slots, Default::default);
        self.len = 0;
        for (key, value) in old {
            if key != EMPTY {
                self.insert_absent(key, value);
            }
        }
    }

    /// The values, in slot order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots
            .iter()
            .filter(|(key, _)| *key != EMPTY)
            .map(|(_, value)| value)
    }

    /// The occupied slots: position, stored key, value.
    fn occupied(&self) -> impl Iterator<Item = (usize, u128, &V)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (key, _))| *key != EMPTY)
            .map(|(index, (key, value))| (index, *key, value))
    }

    /// A table of `slots` slots with these entries at these positions, if the table could have
    /// placed them so: a power of two of slots, no fuller than inserting leaves a table, nor
    /// much emptier than removing does (a decoded size must not allocate beyond reason), and
    /// every entry where a lookup finds it (else lookups would miss entries, and insertions
    /// could find no free slot).
    fn from_occupied(slots: u64, entries: Vec<(u64, u128, V)>) -> Result<HashTable<V>, String> {
        let len = entries.len();
        let plausible = (slots == 0 && len == 0)
            || (slots.is_power_of_two()
                && slots >= MIN_SLOTS as u64
                && len as u64 * 5 <= slots * 4
                && slots <= (len as u64 * 32).max(MIN_SLOTS as u64));
        if !plausible {
            return Err(format!(
                "a table of {slots} slots cannot hold {len} entries"
            ));
        }
        let mut table = HashTable {
            slots: Vec::new(),
            len,
        };
        table.slots.resize_with(slots as usize, Default::default);
        let mut previous = None;
        for (index, key, value) in entries {
            if previous.is_some_and(|previous| previous >= index) || index >= slots {
                return Err(format!("table slot {index} out of order or range"));
            }
            previous = Some(index);
            if key != stored(key) {
                return Err(format!("table slot {index} holds no stored key"));
            }
            table.slots[index as usize] = (key, value);
        }
        for (index, key, _) in table.occupied() {
            if table.find(key) != Some(index) {
                return Err(format!(
                    "table slot {index} is not where its key is looked up"
                ));
            }
        }
        Ok(table)
    }
}

impl<V: Serialize + Default> Serialize for HashTable<V> {
    /// The number of slots, then each occupied slot as (position, stored key, value).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Occupied<'a, V>(&'a HashTable<V>);
        impl<V: Serialize + Default> Serialize for Occupied<'_, V> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut entries = serializer.serialize_seq(Some(self.0.len))?;
                for (index, key, value) in self.0.occupied() {
                    entries.serialize_element(&(index as u64, key, value))?;
                }
                entries.end()
            }
        }
        let mut table = serializer.serialize_tuple(2)?;
        table.serialize_element(&(self.slots.len() as u64))?;
        table.serialize_element(&Occupied(self))?;
        table.end()
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for HashTable<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HashTable<V>, D::Error> {
        struct TableVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de> + Default> Visitor<'de> for TableVisitor<V> {
            type Value = HashTable<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a hash table: its number of slots and its occupied slots")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HashTable<V>, A::Error> {
                let slots: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let entries: Vec<(u64, u128, V)> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                HashTable::from_occupied(slots, entries).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_tuple(2, TableVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of inserts and removes leaves the same map as the standard one, with
        /// keys that collide on their low bits (a small key space) or not.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec((0u8..3, 0u128..64, any::<u32>()), 0..600),
                            spread in any::<bool>()) {
            let mut table: HashTable<u32> = HashTable::default();
            let mut model: HashMap<u128, u32> = HashMap::new();
            for (op, key, value) in ops {
                // Spread keys over the high bits too, or keep them colliding at home.
                let key = if spread { key.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) } else { key << 100 };
                match op {
                    0 => {
                        table.insert(key, value);
                        model.insert(key, value);
                    }
                    1 => prop_assert_eq!(table.remove(key), model.remove(&key)),
                    _ => {
                        // Looked up once, inserted where the search stopped.
                        let index = match table.find_or_vacancy(key) {
                            Ok(index) => index,
                            Err(vacancy) => table.insert_at(vacancy, key, value),
                        };
                        prop_assert_eq!(*table.slot(index), *model.entry(key).or_insert(value));
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for (key, value) in &model {
                prop_assert_eq!(table.get(*key), Some(value));
            }
            let mut values: Vec<u32> = table.values().copied().collect();
            let mut expected: Vec<u32> = model.values().copied().collect();
            values.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(values, expected);
        }
    }

    proptest! {
        /// Decoded, a table holds every entry in the same slot: it iterates in the same order
        /// and goes on exactly as the one encoded.
        #[test]
        fn a_decoded_table_is_the_same_table(keys in proptest::collection::vec(0u128..5_000, 0..400),
                                              removed in proptest::collection::vec(0u128..5_000, 0..300)) {
            let key = |n: u128| n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            let mut table: HashTable<u32> = HashTable::default();
            for (value, n) in keys.iter().enumerate() {
                table.insert(key(*n), value as u32);
            }
            for n in &removed {
                table.remove(key(*n));
            }
            let bytes = postcard::to_allocvec(&table).unwrap();
            let mut decoded: HashTable<u32> = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&decoded.slots, &table.slots);
            prop_assert_eq!(decoded.len(), table.len());
            for n in 0..64u128 {
                table.insert(key(n + 10_000), 7);
                decoded.insert(key(n + 10_000), 7);
                table.remove(key(n));
                decoded.remove(key(n));
            }
            prop_assert_eq!(&decoded.slots, &table.slots);
        }
    }

    #[test]
    fn an_impossible_table_does_not_decode() {
        let mut table: HashTable<u8> = HashTable::default();
        for n in 0..10u128 {
            table.insert(n << 100, 1);
        }
        let good: (u64, Vec<(u64, u128, u8)>) = (
            table.slots.len() as u64,
            table
                .occupied()
                .map(|(index, key, value)| (index as u64, key, *value))
                .collect(),
        );
        let decode = |(slots, entries): &(u64, Vec<(u64, u128, u8)>)| {
            let bytes = postcard::to_allocvec(&(slots, entries)).unwrap();
            postcard::from_bytes::<HashTable<u8>>(&bytes).map(|t| t.len())
        };
        assert_eq!(decode(&good), Ok(10));
        let mut moved = good.clone();
        moved.1[3].0 += 1; // not where a lookup finds it
        let mut unstored = good.clone();
        unstored.1[0].1 &= !(1 << 127);
        let mut outside = good.clone();
        outside.1[9].0 = 1 << 40;
        let huge = (1u64 << 40, good.1.clone());
        let odd = (24, good.1.clone());
        let full = (16, (0..14).map(|n| (n, stored(n as u128), 0)).collect());
        for bad in [moved, unstored, outside, huge, odd, full] {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_equal_to_the_empty_marker_are_keys() {
        let mut table: HashTable<u8> = HashTable::default();
        table.insert(EMPTY, 7);
        assert_eq!(table.get(EMPTY), Some(&7));
        assert!(table.contains_key(EMPTY));
        assert_eq!(table.remove(EMPTY), Some(7));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn churn_keeps_the_table_small() {
        let mut table: HashTable<()> = HashTable::default();
        let key = |n: u128| n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        for n in 0..1_000_000u128 {
            table.insert(key(n), ());
            if n >= 10_000 {
                assert!(table.remove(key(n - 10_000)).is_some());
            }
        }
        assert_eq!(table.len(), 10_000);
        assert_eq!(table.slots(), 16_384);
    }
}
