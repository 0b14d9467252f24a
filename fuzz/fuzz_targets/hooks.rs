//! Fuzz target `hooks`: see [`stockade_fuzz::hooks`].
stockade_fuzz::target!(stockade_fuzz::hooks);
