//! Registering metrics whose names, help texts and labels are constants of
//! the service: a failure to create or register one is a programming error
//! (a bad name, a name registered twice), found by the first test that
//! builds the service's metrics, never a condition of the running system.

use prometheus::core::Collector;
use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// Creates metrics and registers them in one registry.
pub struct Registrar<'r> {
    registry: &'r Registry,
}

impl<'r> Registrar<'r> {
    pub fn new(registry: &'r Registry) -> Self {
        Self { registry }
    }

    fn register<C: Collector + Clone + 'static>(
        &self,
        name: &str,
        made: prometheus::Result<C>,
    ) -> C {
        let metric = made.unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
        self.registry
            .register(Box::new(metric.clone()))
            .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
        metric
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(name, IntGauge::new(name, help))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(name, IntGaugeVec::new(Opts::new(name, help), labels))
    }

    /// A gauge of fractional values (seconds, say).
    pub fn gauge_f64(&self, name: &str, help: &str) -> Gauge {
        self.register(name, Gauge::new(name, help))
    }

    /// A counter of fractional amounts (seconds, say).
    pub fn counter_f64(&self, name: &str, help: &str) -> Counter {
        self.register(name, Counter::new(name, help))
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(name, IntCounter::new(name, help))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(name, IntCounterVec::new(Opts::new(name, help), labels))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        self.register(
            name,
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)),
        )
    }

    /// `<name>{version}` = 1: which build runs (pass the service's
    /// `env!("CARGO_PKG_VERSION")`).
    pub fn build_info(&self, name: &str, version: &str) -> IntGaugeVec {
        let info = self.gauge_vec(name, "Build information; always 1.", &["version"]);
        info.with_label_values(&[version]).set(1);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_lands_in_the_registry_once() {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        r.gauge("demo_gauge", "g").set(3);
        r.counter("demo_total", "c").inc();
        r.counter_vec("demo_by_kind_total", "cv", &["kind"])
            .with_label_values(&["a"])
            .inc();
        r.histogram("demo_seconds", "h", vec![0.1, 1.0])
            .observe(0.5);
        r.build_info("demo_build_info", "9.9.9");
        let mut names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "demo_build_info",
                "demo_by_kind_total",
                "demo_gauge",
                "demo_seconds",
                "demo_total"
            ]
        );
    }

    #[test]
    #[should_panic(expected = "metric demo_gauge")]
    fn a_name_registered_twice_is_a_programming_error() {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        r.gauge("demo_gauge", "g");
        r.gauge("demo_gauge", "g");
    }
}
