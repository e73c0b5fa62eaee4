//! The filter language (it comes from HTTP requests): any text parses to a
//! filter or an error with a column inside the text, and a parsed filter
//! prints to text that parses back to the same filter.
#![no_main]

use flowstore::filter::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(text) {
        Ok(f) => {
            let printed = f.to_string();
            if printed.len() <= flowstore::filter::MAX_LEN {
                assert_eq!(Filter::parse(&printed).as_ref(), Ok(&f), "{printed}");
            }
            let _ = f.matches(&netflow9::Flow::default());
        }
        Err(e) => assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e}"),
    }
});
