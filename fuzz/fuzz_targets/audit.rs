//! Fuzz target `audit`: see [`stockade_fuzz::audit`].
stockade_fuzz::target!(stockade_fuzz::audit);
