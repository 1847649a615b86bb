-- Personal data the auditor does not need: whether an account signs in
-- with Google shows in the audit log (auth.google_*); Google's id for the
-- person is a stable identifier of them across services, so only the
-- sign-in path (definer functions) reads it.
revoke select (google_sub) on crypto.users from auditor;
