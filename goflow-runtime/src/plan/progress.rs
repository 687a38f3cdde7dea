//! [`Progress`]: an [`Advance`] applied in memory, for the embedded engine. Apart from the
//! plan because only that engine needs it; the Redis engine applies an `Advance` by the same
//! counting rules in one script per completion.

use std::collections::HashMap;

use bytes::Bytes;

use super::{Advance, Inputs, Instance, Need, Plan, Slot};

/// The in-memory progress of one request: stored values and arrival counts. The embedded
/// engine keeps one per request; the Redis engine keeps the same in the request's hash.
#[derive(Debug, Default)]
pub struct Progress {
    values: HashMap<Slot, Bytes>,
    arrived: HashMap<Instance, u32>,
    sizes: HashMap<Instance, u32>,
}

impl Progress {
    /// Progress of a request with this input.
    pub fn new(input: Bytes) -> Self {
        let mut progress = Self::default();
        progress.values.insert(Slot::Input, input);
        progress
    }

    /// The request's input.
    pub fn input(&self) -> &Bytes {
        self.values
            .get(&Slot::Input)
            .expect("a progress holds its request's input from the start")
    }

    /// Reserves room for `values` stored values (one per vertex of a plan without `each`), so
    /// that the map does not grow step by step as the request runs.
    #[must_use]
    pub fn with_room_for(mut self, values: usize) -> Self {
        self.values.reserve(values);
        self
    }

    /// Applies an [`Advance`] (skipped instances aside, which only the request's state
    /// records) and returns the instances that thereby have all their inputs.
    pub fn apply(&mut self, advance: Advance) -> Vec<Instance> {
        self.values.extend(advance.store);
        self.sizes.extend(advance.sizes);
        let mut ready = Vec::new();
        for (instance, need) in advance.arrivals {
            // Its one arrival: nothing to count.
            if need == Need::One {
                ready.push(instance);
                continue;
            }
            let size = self.sizes.get(&instance).copied();
            let need = need.arrivals(size).unwrap_or(1);
            let arrived = self.arrived.entry(instance.clone()).or_default();
            *arrived += 1;
            // Exactly at the need, as the Redis engine counts.
            if *arrived == need {
                ready.push(instance);
            }
        }
        ready
    }

    /// The encoded input parts of a ready instance; `None` if one is missing (an engine bug).
    pub fn inputs(&self, plan: &Plan, instance: &Instance) -> Option<Vec<Bytes>> {
        if let Some(slot) = plan.sole_input(instance) {
            return self.values.get(&slot).map(|part| vec![part.clone()]);
        }
        match plan.inputs_of(instance) {
            Inputs::Slots(slots) => slots.iter().map(|s| self.values.get(s).cloned()).collect(),
            Inputs::FirstOf(slots) => slots
                .iter()
                .find_map(|s| self.values.get(s).cloned())
                .map(|part| vec![part]),
            Inputs::Gather { exit, items } => {
                let count = self
                    .sizes
                    .get(&Instance::new(instance.vertex, items.clone()))
                    .copied()?;
                let parts = (0..count)
                    .map(|n| self.values.get(&Inputs::gathered(exit, &items, n)).cloned())
                    .collect::<Option<Vec<Bytes>>>()?;
                Some(vec![plan.frame(&parts)])
            }
        }
    }
}
