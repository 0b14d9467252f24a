//! Fuzz target `wire`: see [`stockade_fuzz::wire`].
stockade_fuzz::target!(stockade_fuzz::wire);
