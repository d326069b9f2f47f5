package signature

import "time"

// HealthInterval is how often a Redis replay store pings its server in
// the background, for Health (each ping bounded by the store's command
// timeout), so that readiness reads the last result without waiting on
// Redis.
const HealthInterval = 3 * time.Second
