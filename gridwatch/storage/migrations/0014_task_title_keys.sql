-- 0014_task_title_keys: a task's title as a message key and its values, translated where it is shown.
-- ``title_key`` names the message (gridwatch.i18n.TASK_TITLES; '' for none) and ``title_args`` holds its values as a
-- JSON object of texts. ``title`` keeps the title rendered in the default language (Chinese): what older readers
-- show, and the only title of a task whose stored title cannot be read back into a key and values.
-- Both backends: a column is added with its default, then made NOT NULL (DuckDB adds no column with a constraint).
ALTER TABLE tasks ADD COLUMN title_key TEXT DEFAULT '';
ALTER TABLE tasks ADD COLUMN title_args TEXT DEFAULT '{}';
ALTER TABLE tasks ALTER COLUMN title_key SET NOT NULL;
ALTER TABLE tasks ALTER COLUMN title_args SET NOT NULL;

-- Tasks opened before: a title gets its key and values only where the Chinese message filled with them gives
-- back exactly the stored title (boiler checks, whose names may hold spaces, keep their stored title).
UPDATE tasks SET title_key = 'routine_patrol'
WHERE kind = 'routine_patrol' AND title = '例行巡查';
UPDATE tasks SET title_key = 'coal_recheck'
WHERE kind = 'coal_check' AND source_kind = 'cadence' AND title = '禁燃区散煤回头看';
UPDATE tasks SET title_key = 'coal_sale_point',
       title_args = '{"name": ' || CAST(to_json(substr(title, 9)) AS VARCHAR) || '}'
WHERE kind = 'coal_check' AND source_kind = 'coal_sale_point' AND substr(title, 1, 8) = '散煤销售点检查：'
  AND length(title) > 8;
UPDATE tasks SET title_key = 'fire_check',
       title_args = '{"time": ' || CAST(to_json(split_part(title, ' ', 2) || ' ' || split_part(title, ' ', 3)) AS VARCHAR)
                    || ', "satellite": ' || CAST(to_json(split_part(title, ' ', 4)) AS VARCHAR)
                    || ', "points": ' || CAST(to_json(substr(split_part(title, ' ', 5), 2)) AS VARCHAR) || '}'
WHERE kind = 'fire_check'
  AND title = ('卫星火点核查 ' || split_part(title, ' ', 2) || ' ' || split_part(title, ' ', 3) || ' '
               || split_part(title, ' ', 4) || ' ×' || substr(split_part(title, ' ', 5), 2));
UPDATE tasks SET title_key = 'bare_land_survey',
       title_args = '{"area_m2": ' || CAST(to_json(split_part(split_part(title, ' ', 2), '㎡', 1)) AS VARCHAR)
                    || ', "date": ' || CAST(to_json(split_part(split_part(title, '（', 2), '）', 1)) AS VARCHAR) || '}'
WHERE kind = 'bare_land_survey' AND source_kind = 'bare_patch'
  AND title = ('裸地核查 ' || split_part(split_part(title, ' ', 2), '㎡', 1) || '㎡（'
               || split_part(split_part(title, '（', 2), '）', 1) || '）');
UPDATE tasks SET title_key = 'bare_greening',
       title_args = '{"first_seen": ' || CAST(to_json(substr(split_part(title, ' ', 2), 3)) AS VARCHAR)
                    || ', "area_m2": ' || CAST(to_json(split_part(split_part(title, ' ', 3), '㎡', 1)) AS VARCHAR)
                    || '}'
WHERE kind = 'bare_land_survey' AND source_kind = 'bare_greening'
  AND title = ('裸地超期绿化督办 首见' || substr(split_part(title, ' ', 2), 3) || ' '
               || split_part(split_part(title, ' ', 3), '㎡', 1) || '㎡');
