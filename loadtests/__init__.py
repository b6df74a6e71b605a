"""Open-loop load generator for the reaction API: profiles, arrivals, outcomes, metrics, locustfile."""
