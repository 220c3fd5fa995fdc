//! Tiercel's benchmarks: criterion micro-benchmarks and load runs against nginx and Varnish.
