//! A slab: a `Vec` with a free list, so requests and visits get stable `u32` handles and the hot
//! path reuses memory instead of allocating per request.

pub struct Slab<T> {
    items: Vec<T>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub fn new() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }

    #[inline]
    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = value;
                i
            }
            None => {
                self.items.push(value);
                (self.items.len() - 1) as u32
            }
        }
    }

    /// Frees slot `i`. The caller must not use the handle afterwards.
    #[inline]
    pub fn remove(&mut self, i: u32) {
        debug_assert!(!self.free.contains(&i), "double free of slab slot {i}");
        self.free.push(i);
    }

    /// Slots in use.
    pub fn live(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Slots ever allocated (the high-water mark).
    pub fn capacity_used(&self) -> usize {
        self.items.len()
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: u32) -> &T {
        &self.items[i as usize]
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    #[inline]
    fn index_mut(&mut self, i: u32) -> &mut T {
        &mut self.items[i as usize]
    }
}
