-- cas_services.evaluation_order: when several services match a URL, the
-- lowest order wins (Apereo's evaluationOrder); at equal order an exact
-- pattern beats a prefix (the longest first), which beats a regular
-- expression, then the id decides (docs/cas.md).
ALTER TABLE cas_services ADD COLUMN evaluation_order INTEGER NOT NULL DEFAULT 0;
