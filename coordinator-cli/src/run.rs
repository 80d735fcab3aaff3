//! `coordinator run`.

use crate::cli::{Globals, RunArgs};
use crate::Failure;

pub(crate) async fn command(globals: &Globals, args: &RunArgs) -> Result<u8, Failure> {
    let _ = (globals, args);
    Err(Failure::error("`run` is not implemented yet"))
}
