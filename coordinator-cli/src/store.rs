//! Opening stores for the commands.
