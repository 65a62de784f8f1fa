//! A bounded in-memory map for facts that never change once true (a hold's
//! owner) or that are confirmed again where it matters (a worker key's id,
//! confirmed inside the write's transaction). Two generations: when the
//! current one is full it becomes the previous one and the older is dropped,
//! so memory stays under `2 × capacity` entries and recent entries survive.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct Memo<K, V> {
    capacity: usize,
    generations: Mutex<(HashMap<K, V>, HashMap<K, V>)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), generations: Mutex::new((HashMap::new(), HashMap::new())) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let guard = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.get(key).or_else(|| guard.1.get(key)).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut guard = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.0.len() >= self.capacity && !guard.0.contains_key(&key) {
            guard.1 = std::mem::take(&mut guard.0);
        }
        guard.0.insert(key, value);
    }

    pub fn remove(&self, key: &K) {
        let mut guard = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.remove(key);
        guard.1.remove(key);
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut guard = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.retain(|key, value| keep(key, value));
        guard.1.retain(|key, value| keep(key, value));
    }

    /// Entries held now (both generations).
    pub fn len(&self) -> usize {
        let guard = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.len() + guard.1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn stays_bounded_and_keeps_the_recent_entries() {
        let memo = Memo::new(3);
        for n in 0..10 {
            memo.insert(n, n * 10);
            assert!(memo.len() <= 6, "at most two generations of 3");
        }
        assert_eq!(memo.get(&9), Some(90));
        assert_eq!(memo.get(&7), Some(70));
        assert_eq!(memo.get(&0), None, "the oldest generation was dropped");
        memo.remove(&9);
        assert_eq!(memo.get(&9), None);
    }

    #[test]
    fn a_known_key_does_not_turn_a_generation_over() {
        let memo = Memo::new(2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        memo.insert("b", 3);
        assert_eq!((memo.get(&"a"), memo.get(&"b")), (Some(1), Some(3)));
    }
}
