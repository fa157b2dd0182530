//! Running a `RunPlan` ([`plan`]): the scheduler decides what runs when
//! ([`scheduler`]), each package that is due becomes a job on a queue
//! ([`jobs`]) that executors take ([`executors`]), the stages say what
//! each package goes through ([`stage`]), executors elsewhere are handed
//! what they need and report back through [`handed`], and [`run`] joins them with the
//! plugin host, reporting
//! everything as one stream of run events that its sinks — console, log
//! files, run record — consume ([`events`]).

pub mod control;
pub mod events;
pub mod executors;
pub mod handed;
pub mod jobs;
pub mod plan;
pub mod run;
pub mod scheduler;
pub mod stage;
