//! `coordinator watch`.

use crate::cli::{Globals, WatchArgs};
use crate::Failure;

pub(crate) async fn command(globals: &Globals, args: &WatchArgs) -> Result<u8, Failure> {
    let _ = (globals, args);
    Err(Failure::error("`watch` is not implemented yet"))
}
