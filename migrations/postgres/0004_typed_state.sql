-- Typed state (decision core, src/case/): status, stage and reason may hold only the values the core knows,
-- and the name the permits were re-issued under is kept for the write-back to SDU.
-- Values an older version could have left that this one does not know are made explicit first, so that
-- the constraints below hold for every row: an unknown stage of an open case becomes NULL (the engine then
-- ends that case `failed`/`invalid_data` with a history line, instead of releasing it unchanged for ever),
-- an unknown status ends the case `failed`/`invalid_data`, an unknown reason is dropped. Each keeps the
-- value it had in `detail`.
UPDATE cases SET detail = 'unknown stored stage: ' || stage, stage = NULL
 WHERE status = 'open' AND stage IS NOT NULL AND stage NOT IN ('checking', 'queued', 'awaiting_reply', 'consent_pending', 'reissuing', 'writing_back');
UPDATE cases SET detail = 'unknown stored status: ' || status, status = 'failed', reason = 'invalid_data',
       stage = NULL, due_at = NULL, offer_phone = NULL
 WHERE status NOT IN ('open', 'not_applicable', 'no_head', 'ineligible', 'no_phone', 'declined', 'expired', 'reissued', 'superseded', 'failed', 'closed_by_operator');
UPDATE cases SET stage = NULL WHERE status <> 'open' AND stage IS NOT NULL;
UPDATE cases SET detail = 'unknown stored reason: ' || reason, reason = NULL
 WHERE reason IS NOT NULL AND reason NOT IN ('no_permit', 'already_current', 'liquidated', 'deceased', 'declared_dead', 'declared_missing', 'residence_abroad', 'incapacitated', 'imprisoned', 'not_registered', 'invalid_number', 'invalid_data', 'reissue_rejected');

ALTER TABLE cases ADD COLUMN reissue_name TEXT;
ALTER TABLE cases ADD CONSTRAINT cases_status_known CHECK (status IN ('open', 'not_applicable', 'no_head', 'ineligible', 'no_phone', 'declined', 'expired', 'reissued', 'superseded', 'failed', 'closed_by_operator'));
ALTER TABLE cases ADD CONSTRAINT cases_stage_known CHECK (stage IS NULL OR stage IN ('checking', 'queued', 'awaiting_reply', 'consent_pending', 'reissuing', 'writing_back'));
ALTER TABLE cases ADD CONSTRAINT cases_stage_only_when_open CHECK (status = 'open' OR stage IS NULL);
ALTER TABLE cases ADD CONSTRAINT cases_reason_known CHECK (reason IS NULL OR reason IN ('no_permit', 'already_current', 'liquidated', 'deceased', 'declared_dead', 'declared_missing', 'residence_abroad', 'incapacitated', 'imprisoned', 'not_registered', 'invalid_number', 'invalid_data', 'reissue_rejected'));
