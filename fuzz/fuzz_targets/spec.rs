//! Fuzz target `spec`: see [`stockade_fuzz::spec`].
stockade_fuzz::target!(stockade_fuzz::spec);
