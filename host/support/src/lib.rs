//! Small parts every layer of Loktar uses, with no knowledge of packages or
//! plugins: the one kind of problem ([`diagnostic`]), text as a terminal
//! may show it ([`terminal`]), "did you mean" ([`suggest`]), paths confined
//! beneath a folder ([`beneath`]), times ([`timefmt`]), waiting for async
//! work from synchronous code ([`blocking`]) and finding programs
//! ([`programs`]).

pub mod beneath;
pub mod blocking;
pub mod diagnostic;
pub mod programs;
pub mod suggest;
pub mod terminal;
pub mod timefmt;
