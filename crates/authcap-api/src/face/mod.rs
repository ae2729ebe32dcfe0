//! The server's face for people: the API reference (`/docs`) and the merchant dashboard
//! (`/dashboard`), server-rendered HTML with its one style sheet embedded in the binary.

pub mod dashboard;
pub mod docs;
pub mod html;
pub mod session;
