//! Each symbol's decimal scale, from `exchangeInfo`: the number of decimals Binance writes the
//! symbol's `PRICE_FILTER` `tickSize` and `LOT_SIZE` `stepSize` with (`"0.01000000"`: 8), which
//! is the number the JSON streams write its prices and quantities with.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::venue::rest::Call;
use crate::venue::Scale;

/// `/api/v3/exchangeInfo?symbols=[...]` for the configured symbols (weight 20, `rest-api.md`).
pub fn scales_call(symbols: &[String]) -> Call {
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{}\"", s.to_uppercase())).collect();
    let query = format!("[{}]", list.join(","));
    Call {
        path: format!("/api/v3/exchangeInfo?symbols={}", utf8_percent_encode(&query, NON_ALPHANUMERIC)),
        label: "exchangeInfo",
        weight: 20,
        on_fallback: true,
    }
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<SymbolInfo>,
}

#[derive(Deserialize)]
struct SymbolInfo {
    symbol: String,
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    filter_type: String,
    tick_size: Option<String>,
    step_size: Option<String>,
}

/// Every configured symbol's [`Scale`] from an `exchangeInfo` body, in `symbols`' order; a
/// symbol missing, or without a `PRICE_FILTER` `tickSize` or `LOT_SIZE` `stepSize`, is an error
/// naming it (the lane then streams JSON: a guessed scale would publish other text than JSON's).
pub fn parse_scales(body: &str, symbols: &[String]) -> Result<Vec<Scale>, String> {
    let info: ExchangeInfo = serde_json::from_str(body).map_err(|e| format!("exchangeInfo is not understood: {e}"))?;
    symbols
        .iter()
        .map(|s| {
            let up = s.to_uppercase();
            let sym = info.symbols.iter().find(|i| i.symbol == up).ok_or(format!("{up} is not in exchangeInfo"))?;
            let filter = |kind: &str, value: fn(&Filter) -> Option<&String>| {
                sym.filters
                    .iter()
                    .filter(|f| f.filter_type == kind)
                    .find_map(value)
                    .and_then(|v| decimals(v))
                    .ok_or(format!("{up} has no {kind} in exchangeInfo"))
            };
            Ok(Scale {
                price: filter("PRICE_FILTER", |f| f.tick_size.as_ref())?,
                qty: filter("LOT_SIZE", |f| f.step_size.as_ref())?,
            })
        })
        .collect()
}

/// The number of decimals of a decimal text (`"0.01000000"`: 8, `"1"`: 0); `None` if it is not
/// one, or has more decimals than a scale can say.
fn decimals(text: &str) -> Option<u8> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && digits(int) && digits(frac)).then(|| u8::try_from(frac.len()).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_come_from_the_filters_as_binance_writes_them() {
        let body = r#"{"symbols":[
            {"symbol":"ETHUSDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01","tickSize":"0.01"},{"filterType":"LOT_SIZE","stepSize":"0.00010000"}]},
            {"symbol":"BTCUSDT","filters":[{"filterType":"LOT_SIZE","stepSize":"0.00000100"},{"filterType":"PRICE_FILTER","tickSize":"0.01000000"}]},
            {"symbol":"SOLUSDT","filters":[{"filterType":"PRICE_FILTER","tickSize":"1"}]}]}"#;
        let syms = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scales(body, &syms(&["btcusdt", "ethusdt"])),
            Ok(vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 8 }])
        );
        assert_eq!(parse_scales(body, &syms(&["solusdt"])), Err("SOLUSDT has no LOT_SIZE in exchangeInfo".into()));
        assert_eq!(parse_scales(body, &syms(&["bnbusdt"])), Err("BNBUSDT is not in exchangeInfo".into()));
        assert!(parse_scales("{", &syms(&["btcusdt"])).unwrap_err().starts_with("exchangeInfo is not understood"));
        assert_eq!(
            (decimals("1"), decimals("0.x1"), decimals(".5"), decimals("12.345")),
            (Some(0), None, None, Some(3))
        );
        assert_eq!(scales_call(&syms(&["btcusdt"])).path, "/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22%5D");
    }
}
