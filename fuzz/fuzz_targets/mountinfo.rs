//! Fuzz target `mountinfo`: see [`stockade_fuzz::mountinfo`].
stockade_fuzz::target!(stockade_fuzz::mountinfo);
