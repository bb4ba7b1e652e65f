// The wire half of alerts: Alertmanager's webhook format (version 4), the
// HTTP(S) poster an AlertNotifier is given, and GET /v1/alerts's reply.
// The state machine and the retries are in monitoring/alerts.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "monitoring/alerts.h"

namespace vigil {

// Checks that a webhook URL can be used: http(s)://host[:port][/path].
Status ValidateWebhookUrl(const std::string& url);

// The webhook body for one notification, as Alertmanager's webhook receiver
// sends it (one alert per body, grouped by alertname). `external_url` is this
// server, for externalURL and generatorURL.
std::string AlertmanagerWebhookBody(const AlertNotification& n, const std::string& external_url);

// Posts each notification to `url` over HTTP or HTTPS (an https:// URL's
// certificate must chain to `ca`, empty: the system's CAs, and name its host)
// within 5 s; a reply that is not 2xx is an error. `external_url` is asked
// at each post (the port may be known only once the server listens). A bad
// URL is an error here, naming it, once.
StatusOr<AlertNotifier::Poster> HttpWebhookPoster(const std::string& url, std::string ca,
                                                  std::function<std::string()> external_url);

// Alertmanager's own API, as Prometheus uses it: POST BASE/api/v2/alerts
// with a list of alerts (labels with alertname, annotations, startsAt,
// endsAt, generatorURL). A firing alert's endsAt is `now_ms +
// valid_for_ms`, renewed by each resend (AlertResender); a resolved one's
// is when it resolved. Alertmanager then routes, groups, silences and
// notifies as it does for Prometheus.
std::string AlertmanagerApiBody(const std::vector<AlertNotification>& alerts, const std::string& external_url,
                                int64_t now_ms, int64_t valid_for_ms);
StatusOr<AlertNotifier::Poster> AlertmanagerApiPoster(const std::string& base_url, std::string ca,
                                                      std::function<std::string()> external_url, int64_t valid_for_ms);

// The same for every delivery of one transition of one alert (retries, a
// resend, a new leader sending it again): the alert's fingerprint, when it
// started firing, and firing or resolved. Sent as the Idempotency-Key header,
// so a receiver can drop what it has seen.
std::string NotificationKey(const AlertNotification& n);

// {"firing": [...], "pending": [...], "recent": [transitions, newest first]}.
std::string AlertsJson(const AlertTracker::Snapshot& snapshot);

}  // namespace vigil
