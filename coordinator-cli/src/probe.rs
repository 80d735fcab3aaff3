//! `coordinator probe`.

use crate::cli::{Globals, ProbeArgs};
use crate::Failure;

pub(crate) async fn command(globals: &Globals, args: &ProbeArgs) -> Result<u8, Failure> {
    let _ = (globals, args);
    Err(Failure::error("`probe` is not implemented yet"))
}
