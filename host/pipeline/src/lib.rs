//! Running a plan ([`plan`]): the scheduler decides what runs when ([`scheduler`]), the
//! stages say what each package goes through ([`stage`]), and [`run`] joins
//! them with the plugin host, reporting everything as events.

pub mod events;
pub mod plan;
pub mod run;
pub mod scheduler;
pub mod stage;
