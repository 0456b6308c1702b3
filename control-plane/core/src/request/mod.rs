//! The life of an access request, as a state machine. Pure: the store and the services apply it;
//! every state change of a request goes through [`RequestState::apply`], so an illegal transition is
//! an error, never a write. See `docs/request-lifecycle.md`.

mod state;

pub use state::{Event, IllegalTransition, RequestState};
