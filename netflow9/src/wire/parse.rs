//! nom combinators that frame the bytes. Complete-input parsers only.

use nom::number::complete::{be_u16, be_u32};
use nom::IResult;
use nom::Parser;

/// `(version, count, sys_uptime, unix_secs, sequence_number, source_id)`
pub(crate) type RawHeader = (u16, u16, u32, u32, u32, u32);

pub(crate) fn parse_header(input: &[u8]) -> IResult<&[u8], RawHeader> {
    (be_u16, be_u16, be_u32, be_u32, be_u32, be_u32).parse(input)
}

/// `(flowset_id, length)`
pub(crate) fn parse_flowset_header(input: &[u8]) -> IResult<&[u8], (u16, u16)> {
    (be_u16, be_u16).parse(input)
}

/// `(template_id, field_count)`
pub(crate) fn parse_template_header(input: &[u8]) -> IResult<&[u8], (u16, u16)> {
    (be_u16, be_u16).parse(input)
}

/// `(template_id, option_scope_length, option_length)`
pub(crate) fn parse_options_template_header(input: &[u8]) -> IResult<&[u8], (u16, u16, u16)> {
    (be_u16, be_u16, be_u16).parse(input)
}

/// `(field_type, field_length)`
pub(crate) fn parse_field_specifier(input: &[u8]) -> IResult<&[u8], (u16, u16)> {
    (be_u16, be_u16).parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_twenty_bytes() {
        assert!(parse_header(&[0; 19]).is_err());
        let (rest, h) = parse_header(&[
            0, 9, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 7,
        ])
        .unwrap();
        assert_eq!(h, (9, 1, 2, 3, 4, 5));
        assert_eq!(rest, &[7]);
    }

    #[test]
    fn options_header() {
        assert_eq!(
            parse_options_template_header(&[1, 0, 0, 4, 0, 8])
                .unwrap()
                .1,
            (256, 4, 8)
        );
        assert!(parse_options_template_header(&[1, 0, 0, 4, 0]).is_err());
    }
}
