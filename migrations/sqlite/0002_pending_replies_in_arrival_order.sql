-- Pending replies are read in arrival order, a page at a time from where the last page ended. The index on
-- `id` alone made every page sort all pending replies (a temporary B-tree per page): quadratic in a large
-- reply backlog (45,000 replies of a 100,000-organisation run were read about 45 times each).
CREATE INDEX replies_pending_arrival ON replies (received_at, id) WHERE status = 'pending';
DROP INDEX replies_pending;
