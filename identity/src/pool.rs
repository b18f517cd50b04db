//! Certificate pools: a folder of ready-made certificate/key pairs (as AWS IoT bulk registration
//! or a vendor delivers them), one pair per device.
