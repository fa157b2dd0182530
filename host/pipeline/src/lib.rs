//! Running a `RunPlan` ([`plan`]): the scheduler decides what runs when
//! ([`scheduler`]), the stages say what each package goes through
//! ([`stage`]), and [`run`] joins them with the plugin host, reporting
//! everything as one stream of run events that its sinks — console, log
//! files, run record — consume ([`events`]).

pub mod events;
pub mod plan;
pub mod run;
pub mod scheduler;
pub mod stage;
