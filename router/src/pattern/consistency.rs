//! Array consistency (corpus §3.3): whether a sub-rule's constraints that are met only
//! inside arrays can be met by leaves that sit, in every array they share, in the same
//! element.
//!
//! The leaves sit in a tree of array elements (the flattener's frames). A constraint's
//! hits inside one element reach it in one way: directly, or through one array nested in
//! it, because a field path leads to one value per object. So the question splits along
//! the tree: an element holds the constraints it must hold when each array nested in it
//! has one element that holds all the constraints met in that array, and so on down. That
//! is one pass up the tree to count, per element and per array, the constraints met below
//! it, and one pass down the frame order to decide; linear in the hits and the elements
//! above them, whatever the arrays nest.
//!
//! Only an event that names a field twice in one object can give a constraint two ways
//! into one element: a repeated key (both values are values of the field, corpus §3.3), or
//! a dotted key beside the nested one (`"a.b"` and `"a": {"b"}` are one path, §3.1).
//! Deciding those events is as hard as satisfiability, so they go to a backtracking search. Its work is charged in
//! frames walked against a budget of [`SEARCH_WORK`] per event, shared by all the
//! sub-rules the event meets; an event that exhausts it is refused, never answered wrongly.

use super::flatten::Flat;

/// The most work the backtracking search does for one event, all sub-rules together: each
/// step costs one, plus for each hit it is compared with the frames the comparison may
/// walk. A unit is a few nanoseconds, so an event spends at most a few milliseconds here.
pub(crate) const SEARCH_WORK: u64 = 1_000_000;

/// A constraint reached a frame directly, not through a nested array.
const DIRECT: u32 = u32::MAX;

/// What one pass knows about a frame. Entries from earlier passes carry an older stamp and
/// count as empty.
#[derive(Debug, Default, Clone, Copy)]
struct FrameState {
    stamp: u32,
    /// The last constraint counted here, and how it arrived (`DIRECT` or the nested array).
    last: u32,
    way: u32,
    /// How many constraints are met at or below this frame.
    met: u32,
    /// How many arrays nested directly in this frame hold hits, and how many of them have
    /// an element that holds all of their constraints.
    arrays: u32,
    settled: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct ArrayState {
    stamp: u32,
    last: u32,
    /// How many constraints are met inside the array.
    met: u32,
    settled: bool,
}

/// The search's state, kept from event to event.
#[derive(Debug, Default)]
pub(crate) struct Search {
    stamp: u32,
    frames: Vec<FrameState>,
    arrays: Vec<ArrayState>,
    /// The frames this pass counted in.
    touched: Vec<u32>,
    /// The backtracking search: the hits taken for the constraints before the last cursor,
    /// and per constraint the next hit to try.
    chosen: Vec<u32>,
    cursors: Vec<u32>,
    /// The backtracking search's work so far for this event.
    spent: u64,
    /// Set when a sub-rule's search ran out of work: the event is to be refused.
    pub(crate) gave_up: bool,
}

impl Search {
    /// The room its per-frame and per-array state takes, in entries.
    pub(crate) fn capacity(&self) -> usize {
        self.frames.capacity().max(self.arrays.capacity())
    }

    /// Starts an event: the search's budget is whole again.
    pub(crate) fn start_event(&mut self) {
        self.spent = 0;
        self.gave_up = false;
    }

    /// Whether one hit per constraint can be taken, all pairwise compatible. `false` with
    /// `gave_up` set when the search ran out of work. `hits` holds
    /// leaves inside arrays; constraint `j`'s are `hits[ranges[j].0..ranges[j].1]`, in
    /// order of constraint.
    pub(crate) fn consistent(&mut self, flat: &Flat, hits: &[u32], ranges: &[(u32, u32)]) -> bool {
        if ranges.is_empty() {
            return true;
        }
        match self.count(flat, hits, ranges) {
            Some(()) => self.decide(flat),
            None => self.backtrack(flat, hits, ranges),
        }
    }

    /// Counts, per frame and array, the constraints met at or below it. `None` when a
    /// constraint reaches a frame in two ways (a field named twice in one object).
    fn count(&mut self, flat: &Flat, hits: &[u32], ranges: &[(u32, u32)]) -> Option<()> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // After four billion passes the stamps come round: start afresh.
            self.frames.clear();
            self.arrays.clear();
            self.stamp = 1;
        }
        let stamp = self.stamp;
        if self.frames.len() < flat.frame_count() {
            self.frames
                .resize(flat.frame_count(), FrameState::default());
        }
        if self.arrays.len() < flat.array_count() {
            self.arrays
                .resize(flat.array_count(), ArrayState::default());
        }
        self.touched.clear();
        let Search {
            frames,
            arrays,
            touched,
            ..
        } = self;
        let mut touch = |frame: u32, frames: &mut [FrameState]| {
            let state = &mut frames[frame as usize];
            if state.stamp != stamp {
                *state = FrameState {
                    stamp,
                    last: u32::MAX,
                    ..FrameState::default()
                };
                touched.push(frame);
            }
        };
        for (j, &(start, end)) in ranges.iter().enumerate() {
            let j = j as u32;
            for &leaf in &hits[start as usize..end as usize] {
                let mut frame = flat.frame_of(leaf);
                let mut way = DIRECT;
                loop {
                    touch(frame, frames);
                    let state = &mut frames[frame as usize];
                    if state.last == j {
                        if state.way != way {
                            return None;
                        }
                        // Counted on the way up from an earlier hit, and so is all above.
                        break;
                    }
                    state.last = j;
                    state.way = way;
                    state.met += 1;
                    if frame == 0 {
                        break;
                    }
                    let (array, parent) = flat.home(frame);
                    touch(parent, frames);
                    let shared = &mut arrays[array as usize];
                    if shared.stamp != stamp {
                        *shared = ArrayState {
                            stamp,
                            last: u32::MAX,
                            met: 0,
                            settled: false,
                        };
                        frames[parent as usize].arrays += 1;
                    }
                    if shared.last != j {
                        shared.last = j;
                        shared.met += 1;
                    }
                    way = array;
                    frame = parent;
                }
            }
        }
        Some(())
    }

    /// Innermost elements first (a frame's number is above its parent's): an element
    /// holds its constraints when every array nested in it is settled, and it settles its
    /// own array when it holds all the constraints met in that array.
    fn decide(&mut self, flat: &Flat) -> bool {
        self.touched.sort_unstable_by(|a, b| b.cmp(a));
        for &frame in &self.touched {
            if frame == 0 {
                continue;
            }
            let state = self.frames[frame as usize];
            if state.settled != state.arrays {
                continue;
            }
            let (array, parent) = flat.home(frame);
            let shared = &mut self.arrays[array as usize];
            if !shared.settled && shared.met == state.met {
                shared.settled = true;
                self.frames[parent as usize].settled += 1;
            }
        }
        let root = self.frames[0];
        root.settled == root.arrays
    }

    /// Backtracking search for one hit per constraint, pairwise compatible, for events that
    /// repeat keys. Iterative, with one cursor per constraint, so that a pattern with
    /// thousands of constraints cannot exhaust the stack.
    fn backtrack(&mut self, flat: &Flat, hits: &[u32], ranges: &[(u32, u32)]) -> bool {
        let Search {
            chosen,
            cursors,
            spent,
            gave_up,
            ..
        } = self;
        chosen.clear();
        cursors.clear();
        let Some(&(first, _)) = ranges.first() else {
            return true;
        };
        cursors.push(first);
        // The depths of the chosen hits' frames, summed: a comparison walks at most both.
        let mut chosen_depths = 0u64;
        while let Some(&at) = cursors.last() {
            *spent += 1;
            if *spent > SEARCH_WORK {
                *gave_up = true;
                return false;
            }
            let depth = cursors.len() - 1;
            if at == ranges[depth].1 {
                // Every hit of this constraint failed: try the next one of the one before.
                cursors.pop();
                if let Some(dropped) = chosen.pop() {
                    chosen_depths -= u64::from(flat.depth(dropped));
                }
                if let Some(previous) = cursors.last_mut() {
                    *previous += 1;
                }
                continue;
            }
            let candidate = hits[at as usize];
            let depth_here = u64::from(flat.depth(candidate));
            *spent += chosen_depths + chosen.len() as u64 * (depth_here + 1);
            if *spent > SEARCH_WORK {
                *gave_up = true;
                return false;
            }
            let leaf = &flat.leaves[candidate as usize];
            let fits = chosen
                .iter()
                .all(|&c| flat.compatible(&flat.leaves[c as usize], leaf));
            if !fits {
                cursors[depth] += 1;
                continue;
            }
            chosen.push(candidate);
            chosen_depths += depth_here;
            match ranges.get(depth + 1) {
                Some(&(next, _)) => cursors.push(next),
                None => return true,
            }
        }
        false
    }
}
