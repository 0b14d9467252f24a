//! Fuzz target `seccomp`: see [`stockade_fuzz::seccomp`].
stockade_fuzz::target!(stockade_fuzz::seccomp);
