//! placeholder until the machine lands
