"""The CX targets and health thresholds, once: the boards colour their panels with them and the
alert rules of ``deploy/prometheus/rules/alerts.yml`` fire at their ``bad`` level
(``tests/grafana/test_targets.py`` fails when the two disagree).

Each :class:`Target` is a goal (green from there) and a bad level (red from there). The values
keep their types (``30.0`` or ``5``) because they are written into the board JSON as they are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A measure's goal (green from there on) and its bad level (red from there on)."""

    goal: float
    bad: float
    #: The alert in alerts.yml whose threshold is ``bad``; "" when no alert watches the measure.
    alert: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.goal > self.bad


# -------------------------------------------------------------- customer experience (scorecard)

#: Mean CSAT answer (1-5). 4.2 means most answers are 4 or 5; under 3.5 the mean is nearer
#: "neutral" (3) than "satisfied" (4).
CSAT = Target(goal=4.2, bad=3.5, alert="CsatDrop")
#: NPS (-100..100, % promoters - % detractors). Under 0 detractors outnumber promoters.
NPS = Target(goal=30.0, bad=0.0, alert="NpsDrop")
#: Mean customer-effort answer (1-7, lower is better): under 3 is easy, over 4.5 is past the
#: scale's middle (4) towards "hard".
CES = Target(goal=3.0, bad=4.5)
#: Share of resolved contacts resolved on the first contact.
FCR = Target(goal=0.70, bad=0.60)
#: Share of deliveries on time; the alert is per carrier and region (the board also shows the fleet).
ON_TIME = Target(goal=0.95, bad=0.85, alert="OnTimeDeliveryDrop")
#: Complaints per contact opened.
COMPLAINT_RATE = Target(goal=0.05, bad=0.10)
#: Client errors per page view; the alert fires on one page at the bad level (the board shows the
#: fleet ratio and each page's).
CLIENT_ERROR_RATIO = Target(goal=0.02, bad=0.10, alert="ClientErrorStorm")

# -------------------------------------------------------------- deliveries and pipeline health

#: Orders whose promise passed with no delay notification: every one is a customer we failed to
#: warn. The alert counts 30 minutes, the deliveries board the last hour.
DELAYS_MISSED = Target(goal=1, bad=5, alert="DeliveryDelaysMissed")
#: Share of input messages sent to the dead-letter topic (malformed or rejected).
DEADLETTER_RATIO = Target(goal=0.005, bad=0.01, alert="DeadLetterRateHigh")
#: Messages the workers are behind; the alert also needs the lag to be growing.
CONSUMER_LAG = Target(goal=100, bad=1000, alert="ConsumerLagGrowing")
