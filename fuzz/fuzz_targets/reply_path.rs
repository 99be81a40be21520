//! Fuzzes the whole reply path on arbitrary bytes, as a target would send them: the relay's
//! shape check, then (for what it lets through) the decoder the Redis client uses. Beyond
//! "never crashes" (a reply nested thousands deep once overflowed the client's stack),
//! `fuzz_reply` asserts that what passes the check decodes no deeper than the check allows
//! and ends where the check thinks it ends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    redis_persistence_exporter::fuzz_reply(data);
});
