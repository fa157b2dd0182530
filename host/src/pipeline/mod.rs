//! Running the plan: the scheduler decides what runs when; the stages of a
//! package (test, build, publish, store, notify) arrive with `loktar run`.

pub mod scheduler;
