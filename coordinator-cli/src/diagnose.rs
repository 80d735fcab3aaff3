//! `coordinator diagnose`.

use crate::cli::{DiagnoseArgs, Globals};
use crate::Failure;

pub(crate) async fn command(globals: &Globals, args: &DiagnoseArgs) -> Result<u8, Failure> {
    let _ = (globals, args);
    Err(Failure::error("`diagnose` is not implemented yet"))
}
