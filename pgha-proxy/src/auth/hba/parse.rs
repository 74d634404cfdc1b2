//! Reading hba lines: tokens (quotes, commas, comments) and columns.

use std::net::IpAddr;

use super::{Address, ConnType, HbaRule, Method, Names};

/// One comma-separated item of a field, and whether it was quoted.
#[derive(Debug)]
struct Item {
    text: String,
    quoted: bool,
}

/// Splits a line into fields (by whitespace) of items (by commas), honouring
/// double quotes (`""` inside quotes is a literal quote) and `#` comments.
fn tokenize(line: &str) -> Result<Vec<Vec<Item>>, String> {
    let mut fields: Vec<Vec<Item>> = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(fields),
            Some(_) => {}
        }
        let mut field = Vec::new();
        let mut item = Item {
            text: String::new(),
            quoted: false,
        };
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '#' {
                break;
            }
            chars.next();
            match c {
                '"' => {
                    item.quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err("unterminated quoted name".into()),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                item.text.push('"');
                            }
                            Some('"') => break,
                            Some(q) => item.text.push(q),
                        }
                    }
                }
                ',' => field.push(std::mem::replace(
                    &mut item,
                    Item {
                        text: String::new(),
                        quoted: false,
                    },
                )),
                c => item.text.push(c),
            }
        }
        field.push(item);
        fields.push(field);
    }
}

pub(super) fn parse_line(line: &str, line_no: usize) -> Result<Option<HbaRule>, String> {
    let fields = tokenize(line)?;
    let mut fields = fields.into_iter();
    let Some(conn_field) = fields.next() else {
        return Ok(None);
    };
    let conn = match single_keyword(&conn_field, "connection type")?.as_str() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        other @ ("hostgssenc" | "hostnogssenc") => {
            return Err(format!(
                "connection type `{other}` is not supported (the proxy does no GSSAPI)"
            ))
        }
        other => {
            return Err(format!(
                "unknown connection type `{other}` (expected local, host, hostssl or hostnossl)"
            ))
        }
    };
    let databases = parse_names(fields.next().ok_or("missing DATABASE column")?, true)?;
    let users = parse_names(fields.next().ok_or("missing USER column")?, false)?;
    let rest: Vec<Vec<Item>> = fields.collect();
    let (address, method_field, options) = if conn == ConnType::Local {
        let (m, o) = rest.split_first().ok_or("missing METHOD column")?;
        (None, m, o)
    } else {
        let (addr, after) = rest.split_first().ok_or("missing ADDRESS column")?;
        let addr = single_keyword(addr, "ADDRESS")?;
        let (address, after) = parse_address(&addr, after)?;
        let (m, o) = after.split_first().ok_or("missing METHOD column")?;
        (Some(address), m, o)
    };
    let method_word = single_keyword(method_field, "METHOD")?;
    let method = Method::from_keyword(&method_word).ok_or_else(|| {
        if method_word.contains('/') || method_word.parse::<IpAddr>().is_ok() {
            format!("`{method_word}` where METHOD was expected (`local` rules have no ADDRESS)")
        } else {
            format!(
                "authentication method `{method_word}` is not supported \
                 (expected trust, reject, md5, scram-sha-256 or password)"
            )
        }
    })?;
    if let Some(first) = options.first().and_then(|f| f.first()) {
        return Err(format!(
            "unexpected `{}` after METHOD (options are not supported)",
            first.text
        ));
    }
    Ok(Some(HbaRule {
        line: line_no,
        conn,
        databases,
        users,
        address,
        method,
    }))
}

/// A field that must be one unquoted word.
fn single_keyword(field: &[Item], column: &str) -> Result<String, String> {
    match field {
        [item] if !item.quoted && !item.text.is_empty() => Ok(item.text.clone()),
        _ => Err(format!("{column} must be a single unquoted word")),
    }
}

fn parse_names(field: Vec<Item>, database: bool) -> Result<Names, String> {
    let column = if database { "DATABASE" } else { "USER" };
    let mut list = Vec::new();
    let only = field.len() == 1;
    for item in field {
        if item.text.is_empty() {
            return Err(format!("empty name in {column} list"));
        }
        if item.quoted {
            list.push(Some(item.text));
            continue;
        }
        match item.text.as_str() {
            "all" if only => return Ok(Names::All),
            "all" => return Err(format!("`all` cannot be part of a {column} list")),
            "sameuser" if database => list.push(None),
            "samerole" | "samegroup" if database => {
                return Err(format!(
                    "`{}` is not supported (the proxy knows no roles)",
                    item.text
                ))
            }
            "replication" if database => {
                return Err(
                    "`replication` is not supported (the proxy does not route replication)".into(),
                )
            }
            t if t.starts_with('+') => {
                return Err(format!(
                    "group membership `{t}` is not supported; list the users instead"
                ))
            }
            t if t.starts_with('@') => {
                return Err(format!(
                    "file inclusion `{t}` is not supported; list the names instead"
                ))
            }
            _ => list.push(Some(item.text)),
        }
    }
    Ok(Names::List(list))
}

/// Parses ADDRESS (and a netmask column after it, if it takes one); returns
/// the fields after the address.
fn parse_address<'f>(
    addr: &str,
    after: &'f [Vec<Item>],
) -> Result<(Address, &'f [Vec<Item>]), String> {
    if addr == "all" {
        return Ok((Address::All, after));
    }
    if matches!(addr, "samehost" | "samenet") {
        return Err(format!("address `{addr}` is not supported; write a CIDR"));
    }
    if let Some((ip, prefix)) = addr.split_once('/') {
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid IP address `{ip}` in `{addr}`"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(format!(
                    "invalid prefix length `{prefix}` in `{addr}` (0 to {max})"
                ))
            }
        };
        return Ok((Address::Net { net, prefix }, after));
    }
    let Ok(net) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "invalid address `{addr}` (expected all, a CIDR like 10.0.0.0/8, or an address and a netmask; \
             host names are not supported)"
        ));
    };
    let (mask_field, after) = after
        .split_first()
        .ok_or_else(|| format!("address `{addr}` needs a /prefix or a netmask column"))?;
    let mask_text = single_keyword(mask_field, "netmask")?;
    let mask: IpAddr = mask_text.parse().map_err(|_| {
        format!("address `{addr}` needs a /prefix or a netmask column, found `{mask_text}`")
    })?;
    let prefix = match (net, mask) {
        (IpAddr::V4(_), IpAddr::V4(m)) => contiguous_prefix(u128::from(u32::from(m)) << 96),
        (IpAddr::V6(_), IpAddr::V6(m)) => contiguous_prefix(u128::from(m)),
        _ => None,
    }
    .ok_or_else(|| format!("invalid netmask `{mask_text}` for `{addr}`"))?;
    Ok((Address::Net { net, prefix }, after))
}

/// The prefix length of a left-aligned mask, if its ones are contiguous.
fn contiguous_prefix(mask: u128) -> Option<u8> {
    let ones = mask.leading_ones();
    (mask.checked_shl(ones).unwrap_or(0) == 0).then(|| u8::try_from(ones).unwrap_or(128))
}
