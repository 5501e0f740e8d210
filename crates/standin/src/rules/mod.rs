//! The decisions the stand-in makes, as pure functions of what it observed: no I/O, no clock (time is a
//! parameter). The reconcilers in `crate::reconcile` observe, call these, and carry the result out.

pub mod amr;
pub mod appvault;
pub mod forms;
pub mod schedule;
pub mod snapshot;
