//! `coordinator status`.

use crate::cli::{Globals, StatusArgs};
use crate::Failure;

pub(crate) async fn command(globals: &Globals, args: &StatusArgs) -> Result<u8, Failure> {
    let _ = (globals, args);
    Err(Failure::error("`status` is not implemented yet"))
}
