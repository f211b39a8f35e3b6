"""The daemon's log vocabulary: every event name it writes, defined once.

Logs are an interface (operators alert on them), so names are values here, not strings spread
through the code; the README's table documents each one (``tests/test_readme.py`` checks it).
The simulator's own logs are not part of this vocabulary.
"""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    # lifecycle
    DAEMON_STARTING = "daemon_starting"
    DAEMON_STARTED = "daemon_started"
    DAEMON_STOPPING = "daemon_stopping"
    DAEMON_STOPPED = "daemon_stopped"
    DAEMON_CRASHED = "daemon_crashed"
    SHUTDOWN_DEADLINE_REACHED = "shutdown_deadline_reached"
    SIMULATOR_STARTED = "simulator_started"
    DEMO_ENVIRONMENT_CREATED = "demo_environment_created"
    HTTP_LISTENING = "http_listening"
    # the web console
    CONSOLE_ENABLED = "console_enabled"
    CONSOLE_LOGIN = "console_login"
    CONSOLE_LOGIN_FAILED = "console_login_failed"
    CONSOLE_CHANGE = "console_change"
    CONSOLE_SAMPLE_FAILED = "console_sample_failed"
    # the BatchCompute-compatible API
    API_LISTENING = "api_listening"
    API_AUDIT = "api_audit"
    API_REFUSED = "api_refused"
    API_FAILED = "api_failed"
    API_DEMO_KEY_CREATED = "api_demo_key_created"
    HEARTBEAT = "heartbeat"
    # leadership
    LEASE_ACQUIRED = "lease_acquired"
    LEASE_RELEASED = "lease_released"
    LEASE_LOST = "lease_lost"
    LEASE_ACQUIRE_FAILED = "lease_acquire_failed"
    LEASE_RENEW_FAILED = "lease_renew_failed"
    LEASE_RELEASE_FAILED = "lease_release_failed"
    # wake-ups
    NOTIFY_LISTENING = "notify_listening"
    NOTIFY_FAILED = "notify_failed"
    # observation
    STATE_LOADED = "state_loaded"
    FIRST_OBSERVATION = "first_observation"
    SWEEP_COMPLETED = "sweep_completed"  # debug
    SWEEP_FAILED = "sweep_failed"
    PROBE_FOUND = "probe_found"  # debug
    PROBE_FAILED = "probe_failed"  # debug
    # the pass
    PASS_FAILED = "pass_failed"
    RECORD_FAILED = "record_failed"
    RELOAD_DEFERRED = "reload_deferred"  # debug
    NODE_RECORD_RESTORED = "node_record_restored"
    # launches
    LAUNCH_REQUESTED = "launch_requested"
    LAUNCH_SUCCEEDED = "launch_succeeded"
    LAUNCH_FAILED = "launch_failed"
    LAUNCH_UNRESOLVED = "launch_unresolved"
    LAUNCH_RESENT = "launch_resent"
    LAUNCH_RESOLVED_FROM_TAGS = "launch_resolved_from_tags"
    LAUNCH_ABANDONED = "launch_abandoned"
    BACKOFF_SCHEDULED = "backoff_scheduled"
    BACKOFF_LIFTED = "backoff_lifted"
    # instances (node changes: the planner names each change by one of these)
    INSTANCE_OBSERVED = "instance_observed"  # debug
    INSTANCE_RUNNING = "instance_running"
    INSTANCE_INTERRUPTED = "instance_interrupted"
    INSTANCE_RELEASED = "instance_released"
    INSTANCE_STOPPED = "instance_stopped"
    INSTANCE_TERMINATING = "instance_terminating"
    INSTANCE_TERMINATED = "instance_terminated"
    LAUNCH_TIMEOUT = "launch_timeout"
    ORPHAN_ADOPTED = "orphan_adopted"
    ORPHAN_TERMINATING = "orphan_terminating"
    # terminations
    TERMINATE_REQUESTED = "terminate_requested"
    TERMINATE_DEFERRED = "terminate_deferred"
    TERMINATE_NOT_FOUND = "terminate_not_found"
    TERMINATE_FAILED = "terminate_failed"
    TERMINATE_ABANDONED = "terminate_abandoned"
    # capacity policy
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_ENDED = "compensation_ended"
    REPLACEMENT_STARTED = "replacement_started"
    REPLACEMENT_DONE = "replacement_done"
    SPEND_CAP_REACHED = "spend_cap_reached"
    PRICE_REFRESH_FAILED = "price_refresh_failed"
    # notifications
    NOTIFICATION_SENT = "notification_sent"  # debug
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFICATION_REFUSED = "notification_refused"
    NOTIFICATIONS_DROPPED = "notifications_dropped"
    NOTIFIER_STORE_FAILED = "notifier_store_failed"
    # environments
    ENV_STATUS = "env_status"
    ENV_CONVERGED = "env_converged"
    ENV_INVALID = "env_invalid"
    # the cloud client
    CVM_RETRY = "cvm_retry"
    CVM_TERMINATE_ALREADY_GONE = "cvm_terminate_already_gone"
