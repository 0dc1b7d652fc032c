//! One JSON object per line on stdout, like the Node peers: `{"event":..,"t":<wall-clock ms>,..}`.
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub enum Value {
    Int(u64),
    Num(f64),
    Str(String),
    Bool(bool),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Num(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Milliseconds rounded to one decimal, as the Node peers report them.
pub fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

pub fn emit(event: &str, fields: Vec<(&str, Value)>) {
    let mut line = format!("{{\"event\":{},\"t\":{}", quote(event), now_ms());
    for (key, value) in fields {
        let text = match value {
            Value::Int(v) => v.to_string(),
            Value::Num(v) if v.is_finite() => v.to_string(),
            Value::Num(_) => "null".to_owned(),
            Value::Str(s) => quote(&s),
            Value::Bool(b) => b.to_string(),
        };
        line.push_str(&format!(",{}:{}", quote(key), text));
    }
    line.push_str("}\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `emit!("name", key = value, ...)`
#[macro_export]
macro_rules! emit {
    ($event:expr $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::events::emit($event, vec![$((stringify!($key), $crate::events::Value::from($value))),*])
    };
}
