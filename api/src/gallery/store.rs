//! Gallery queries. Feeds are raw SQL built from a few fixed fragments (the keyset conditions differ
//! per sort), so the statements the benchmark runs directly in PostgreSQL are the ones served.

use super::CollectionId;
use super::types::Sort;
use crate::db::schema::{collection_images, collections, images};
use crate::generation::{GenerationId, ImageId};
use crate::identity::UserId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    BigInt, Bool, Double, Float, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// What anyone may see in a list: public, not flagged, not deleted. The feed indexes are partial
/// on exactly this, so it must stay word for word the same as in the migration.
pub const PUBLIC: &str = "i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL";

#[derive(Debug, Clone, QueryableByName)]
pub struct ImageRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: ImageId,
    #[diesel(sql_type = SqlUuid)]
    pub user_id: UserId,
    #[diesel(sql_type = SqlUuid)]
    pub generation_id: GenerationId,
    #[diesel(sql_type = Integer)]
    pub width: i32,
    #[diesel(sql_type = Integer)]
    pub height: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub title: Option<String>,
    #[diesel(sql_type = Text)]
    pub prompt: String,
    #[diesel(sql_type = Text)]
    pub model: String,
    #[diesel(sql_type = BigInt)]
    pub seed: i64,
    #[diesel(sql_type = Text)]
    pub visibility: String,
    #[diesel(sql_type = Bool)]
    pub nsfw: bool,
    #[diesel(sql_type = Integer)]
    pub like_count: i32,
    #[diesel(sql_type = Double)]
    pub trending_score: f64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Integer>)]
    pub vertex_count: Option<i32>,
    #[diesel(sql_type = Text)]
    pub content_type: String,
    #[diesel(sql_type = BigInt)]
    pub byte_size: i64,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = Bool)]
    pub liked: bool,
    /// Relevance to the search (0 without one).
    #[diesel(sql_type = Float)]
    pub rank: f32,
    /// When it was added to the collection being listed (null elsewhere).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub added_at: Option<DateTime<Utc>>,
}

enum Bind {
    Uuid(uuid::Uuid),
    OptUuid(Option<uuid::Uuid>),
    Text(String),
    Int(i32),
    Double(f64),
    Real(f32),
    Time(DateTime<Utc>),
}

/// SQL text with numbered parameters added as it is built.
struct Sql {
    text: String,
    binds: Vec<Bind>,
    anonymous: bool,
    /// Plan the statement for its values on every run instead of keeping it prepared.
    plan_each_run: bool,
}

impl Sql {
    fn new(viewer: Option<UserId>) -> Self {
        // $1 is always the viewer (null when anonymous): `liked` needs it.
        Self {
            text: String::new(),
            binds: vec![Bind::OptUuid(viewer.map(|v| v.0))],
            anonymous: viewer.is_none(),
            plan_each_run: false,
        }
    }

    fn param(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    /// A value the planner does not get to see (a sub-select is evaluated only when the statement
    /// runs): where a page starts, or how far back `top` looks. Neither changes how to read a page,
    /// but a plan made for one such value can look cheaper than the plan for any, and PostgreSQL
    /// would then plan every such page afresh (a third of a millisecond each at a million images).
    fn unplanned_param(&mut self, bind: Bind) -> String {
        format!("(SELECT {})", self.param(bind))
    }

    /// A page statement: the page is cut from `images` alone (`inner`: `FROM … WHERE …`, ordered by
    /// `inner_order`), and only its rows are joined to their owners and likes: the join never
    /// touches more than a page, and the planner keeps walking the index in order.
    fn paged(
        &self,
        rank: &str,
        added_at: &str,
        inner: &str,
        inner_order: &str,
        outer_order: &str,
        rows: i64,
    ) -> String {
        // An anonymous viewer's statement has no likes to look up. Written as a test of a null $1,
        // PostgreSQL's plan for one null viewer would drop the look-up and look cheaper than the
        // plan for any viewer, so it would plan each anonymous page afresh.
        let liked = if self.anonymous {
            "false"
        } else {
            "EXISTS (SELECT 1 FROM image_likes l WHERE l.image_id = p.id AND l.user_id = $1)"
        };
        format!(
            "SELECT p.*, u.username, u.display_name, {liked} AS liked \
             FROM (SELECT i.id, i.user_id, i.generation_id, i.width, i.height, i.title, i.prompt, \
                          i.model, i.seed, i.visibility, i.nsfw, i.like_count, i.trending_score, \
                          i.created_at, i.kind, i.vertex_count, i.content_type, i.byte_size, \
                          {rank} AS rank, {added_at} AS added_at \
                   {inner} ORDER BY {inner_order} LIMIT {rows}) p \
             JOIN users u ON u.id = p.user_id ORDER BY {outer_order}"
        )
    }

    async fn load(self, conn: &mut AsyncPgConnection) -> QueryResult<Vec<ImageRow>> {
        let mut query = diesel::sql_query(self.text).into_boxed();
        for bind in self.binds {
            query = match bind {
                Bind::Uuid(v) => query.bind::<SqlUuid, _>(v),
                Bind::OptUuid(v) => query.bind::<Nullable<SqlUuid>, _>(v),
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::Int(v) => query.bind::<Integer, _>(v),
                Bind::Double(v) => query.bind::<Double, _>(v),
                Bind::Real(v) => query.bind::<Float, _>(v),
                Bind::Time(v) => query.bind::<Timestamptz, _>(v),
            };
        }
        if self.plan_each_run {
            return query.load(conn).await;
        }
        // Every value is a parameter and the text comes from a fixed set of fragments.
        crate::db::Prepared(query).load(conn).await
    }

    /// Loads a statement built by `paged` for `limit` items: at most the page and its extra row.
    async fn load_page(
        self,
        conn: &mut AsyncPgConnection,
        limit: i64,
    ) -> QueryResult<Vec<ImageRow>> {
        let mut rows = self.load(conn).await?;
        rows.truncate(usize::try_from(limit + 1).unwrap_or(usize::MAX));
        Ok(rows)
    }
}

/// How many rows a page of `limit` items asks for: the page and the extra row that says whether more
/// follow, rounded up to one of three sizes (the caller drops the rest).
///
/// The LIMIT is written into the statement, not bound: PostgreSQL cannot cost a generic plan whose
/// LIMIT is a parameter (it assumes a tenth of the table), so such a statement is planned afresh on
/// every run, which cost more than running it. Rounding keeps the number of distinct statement texts,
/// each prepared once per connection, small.
fn rows_for(limit: i64) -> i64 {
    match limit {
        ..=20 => 21,
        21..=50 => 51,
        _ => limit.max(crate::db::cursor::MAX_LIMIT) + 1,
    }
}

/// Where a public list continues: the last item's sort value and id.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeedKey(pub f64, pub ImageId);

pub struct Feed {
    pub viewer: Option<UserId>,
    /// Only this user's images (an artist page).
    pub owner: Option<UserId>,
    pub model: Option<String>,
    /// Only outputs of this kind (`image` or `model3d`).
    pub kind: Option<&'static str>,
    pub q: Option<String>,
    pub sort: Sort,
    /// For `top`: only images this recent.
    pub since: Option<DateTime<Utc>>,
    pub after: Option<FeedKey>,
    pub limit: i64,
}

/// The sort value a row continues from, for the cursor.
pub fn feed_key(sort: Sort, row: &ImageRow) -> FeedKey {
    let value = match sort {
        Sort::New => 0.0,
        Sort::Top => f64::from(row.like_count),
        Sort::Trending => row.trending_score,
        Sort::Relevance => f64::from(row.rank),
    };
    FeedKey(value, row.id)
}

/// A page of public images.
pub async fn feed(conn: &mut AsyncPgConnection, feed: Feed) -> QueryResult<Vec<ImageRow>> {
    let mut sql = Sql::new(feed.viewer);
    // A ranked search for one plain word reads its page in rank order from `image_search_terms`
    // (see its migration); any other search ranks every match the GIN index finds.
    let word = feed
        .q
        .as_deref()
        .filter(|q| feed.sort == Sort::Relevance && is_plain_word(q));
    // How many images match decides a GIN search's plan, and a generic plan (one for any words)
    // evaluates the query text once per matching row: those are planned for their words.
    sql.plan_each_run = feed.q.is_some() && word.is_none();
    let (mut text, rank, relevance) = if let Some(word) = word {
        let word = sql.param(Bind::Text(word.to_owned()));
        (
            format!(
                "FROM image_search_terms t JOIN images i ON i.id = t.image_id \
                 WHERE t.lexeme = btrim(websearch_to_tsquery('english', {word})::text, '''') \
                   AND {PUBLIC}"
            ),
            "t.rank".to_owned(),
            ("(t.rank, t.image_id)", "t.rank DESC, t.image_id DESC"),
        )
    } else {
        let query = feed.q.as_ref().map(|q| {
            format!(
                "websearch_to_tsquery('english', {})",
                sql.param(Bind::Text(q.clone()))
            )
        });
        let rank = query.as_ref().map_or_else(
            || "0::real".to_owned(),
            |q| format!("ts_rank(i.search, {q})"),
        );
        let mut text = format!("FROM images i WHERE {PUBLIC}");
        if let Some(q) = &query {
            text.push_str(&format!(" AND i.search @@ {q}"));
        }
        (text, rank, ("", "rank DESC, i.id DESC"))
    };
    if let Some(owner) = feed.owner {
        text.push_str(&format!(
            " AND i.user_id = {}",
            sql.param(Bind::Uuid(owner.0))
        ));
    }
    if let Some(model) = feed.model {
        text.push_str(&format!(" AND i.model = {}", sql.param(Bind::Text(model))));
    }
    if let Some(kind) = feed.kind {
        text.push_str(&format!(
            " AND i.kind = {}",
            sql.param(Bind::Text(kind.to_owned()))
        ));
    }
    if let Some(since) = feed.since {
        text.push_str(&format!(
            " AND i.created_at >= {}",
            sql.unplanned_param(Bind::Time(since))
        ));
    }
    let (key, order, outer) = match feed.sort {
        Sort::New => ("i.id", "i.id DESC", "p.id DESC"),
        Sort::Top => (
            "(i.like_count, i.id)",
            "i.like_count DESC, i.id DESC",
            "p.like_count DESC, p.id DESC",
        ),
        Sort::Trending => (
            "(i.trending_score, i.id)",
            "i.trending_score DESC, i.id DESC",
            "p.trending_score DESC, p.id DESC",
        ),
        Sort::Relevance => (relevance.0, relevance.1, "p.rank DESC, p.id DESC"),
    };
    if let Some(FeedKey(value, id)) = feed.after {
        let id = sql.unplanned_param(Bind::Uuid(id.0));
        let value = match feed.sort {
            Sort::New => String::new(),
            // Counts are whole numbers; the cursor carries them as a float.
            Sort::Top => sql.unplanned_param(Bind::Int(value as i32)),
            Sort::Trending => sql.unplanned_param(Bind::Double(value)),
            Sort::Relevance => sql.unplanned_param(Bind::Real(value as f32)),
        };
        let condition = match feed.sort {
            Sort::New => format!("{key} < {id}"),
            Sort::Relevance if word.is_none() => format!("({rank}, i.id) < ({value}, {id})"),
            _ => format!("{key} < ({value}, {id})"),
        };
        text.push_str(&format!(" AND {condition}"));
    }
    sql.text = sql.paged(
        &rank,
        "NULL::timestamptz",
        &text,
        order,
        outer,
        rows_for(feed.limit),
    );
    sql.load_page(conn, feed.limit).await
}

/// One word of the letters a-z: its lexeme (if it is not a stop word) is the whole search.
fn is_plain_word(q: &str) -> bool {
    !q.is_empty() && q.bytes().all(|b| b.is_ascii_alphabetic())
}

pub struct Mine {
    pub owner: UserId,
    pub model: Option<String>,
    pub kind: Option<&'static str>,
    pub visibility: Option<&'static str>,
    pub collection: Option<CollectionId>,
    pub after: Option<ImageId>,
    pub limit: i64,
}

/// A page of the owner's live images, newest first.
pub async fn mine(conn: &mut AsyncPgConnection, mine: Mine) -> QueryResult<Vec<ImageRow>> {
    let mut sql = Sql::new(Some(mine.owner));
    let mut text = "FROM images i WHERE i.user_id = $1 AND i.deleted_at IS NULL".to_owned();
    if let Some(model) = mine.model {
        text.push_str(&format!(" AND i.model = {}", sql.param(Bind::Text(model))));
    }
    if let Some(kind) = mine.kind {
        text.push_str(&format!(
            " AND i.kind = {}",
            sql.param(Bind::Text(kind.to_owned()))
        ));
    }
    if let Some(visibility) = mine.visibility {
        text.push_str(&format!(
            " AND i.visibility = {}",
            sql.param(Bind::Text(visibility.to_owned()))
        ));
    }
    if let Some(collection) = mine.collection {
        text.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM collection_images ci WHERE ci.collection_id = {} AND ci.image_id = i.id)",
            sql.param(Bind::Uuid(collection.0))
        ));
    }
    if let Some(after) = mine.after {
        text.push_str(&format!(
            " AND i.id < {}",
            sql.unplanned_param(Bind::Uuid(after.0))
        ));
    }
    sql.text = sql.paged(
        "0::real",
        "NULL::timestamptz",
        &text,
        "i.id DESC",
        "p.id DESC",
        rows_for(mine.limit),
    );
    sql.load_page(conn, mine.limit).await
}

/// One live image (whoever owns it: the caller decides what the viewer may see).
pub async fn image(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    id: ImageId,
) -> QueryResult<Option<ImageRow>> {
    let mut sql = Sql::new(viewer);
    let id = sql.param(Bind::Uuid(id.0));
    sql.text = sql.paged(
        "0::real",
        "NULL::timestamptz",
        &format!("FROM images i WHERE i.id = {id} AND i.deleted_at IS NULL"),
        "i.id",
        "p.id",
        1,
    );
    Ok(sql.load(conn).await?.pop())
}

/// The images of a collection that `viewer` may see, most recently added first.
pub async fn collection_images(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    collection: CollectionId,
    after: Option<(DateTime<Utc>, ImageId)>,
    limit: i64,
) -> QueryResult<Vec<ImageRow>> {
    let mut sql = Sql::new(viewer);
    let collection = sql.param(Bind::Uuid(collection.0));
    let mut text = format!(
        "FROM images i JOIN collection_images ci ON ci.image_id = i.id \
         WHERE ci.collection_id = {collection} AND i.deleted_at IS NULL \
           AND (i.user_id = $1 OR (i.visibility <> 'private' AND NOT i.nsfw))"
    );
    if let Some((added_at, id)) = after {
        let added_at = sql.unplanned_param(Bind::Time(added_at));
        let id = sql.unplanned_param(Bind::Uuid(id.0));
        text.push_str(&format!(
            " AND (ci.added_at, ci.image_id) < ({added_at}, {id})"
        ));
    }
    sql.text = sql.paged(
        "0::real",
        "ci.added_at",
        &text,
        "ci.added_at DESC, ci.image_id DESC",
        "p.added_at DESC, p.id DESC",
        rows_for(limit),
    );
    sql.load_page(conn, limit).await
}

/// The negative prompt of an image's generation (shown to the owner only).
pub async fn negative_prompt(
    conn: &mut AsyncPgConnection,
    generation: GenerationId,
) -> QueryResult<Option<String>> {
    use crate::db::schema::generations;
    generations::table
        .find(generation)
        .select(generations::negative_prompt)
        .first(conn)
        .await
        .optional()
        .map(Option::flatten)
}

pub async fn update_image(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    id: ImageId,
    visibility: Option<&str>,
    title: Option<Option<&str>>,
) -> QueryResult<usize> {
    let target = images::table
        .find(id)
        .filter(images::user_id.eq(owner))
        .filter(images::deleted_at.is_null());
    match (visibility, title) {
        (Some(v), Some(t)) => {
            diesel::update(target)
                .set((images::visibility.eq(v), images::title.eq(t)))
                .execute(conn)
                .await
        }
        (Some(v), None) => {
            diesel::update(target)
                .set(images::visibility.eq(v))
                .execute(conn)
                .await
        }
        (None, Some(t)) => {
            diesel::update(target)
                .set(images::title.eq(t))
                .execute(conn)
                .await
        }
        (None, None) => images::table
            .find(id)
            .filter(images::user_id.eq(owner))
            .filter(images::deleted_at.is_null())
            .count()
            .get_result::<i64>(conn)
            .await
            .map(|n| n as usize),
    }
}

/// Deletes an image of the owner's from every list at once (its files go later, in the sweep).
pub async fn delete_image(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    id: ImageId,
) -> QueryResult<bool> {
    use crate::db::schema::users;
    let deleted = diesel::update(
        images::table
            .find(id)
            .filter(images::user_id.eq(owner))
            .filter(images::deleted_at.is_null()),
    )
    .set(images::deleted_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Ok(false);
    }
    diesel::delete(collection_images::table.filter(collection_images::image_id.eq(id)))
        .execute(conn)
        .await?;
    diesel::update(collections::table.filter(collections::cover_image_id.eq(id)))
        .set(collections::cover_image_id.eq(None::<ImageId>))
        .execute(conn)
        .await?;
    diesel::update(users::table.filter(users::avatar_image_id.eq(id)))
        .set(users::avatar_image_id.eq(None::<ImageId>))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Takes everything of a deleted account's out of the gallery, in the caller's transaction: its
/// live images are deleted (out of every list, and out of others' collections, covers and search;
/// the file sweep removes their files), their prompts and titles blanked, its collections removed,
/// and its likes taken back from the counts they added to. Returns how many images it deleted.
pub async fn erase_owner(conn: &mut AsyncPgConnection, owner: UserId) -> QueryResult<usize> {
    let images_of = images::table.filter(images::user_id.eq(owner));
    diesel::delete(
        collection_images::table
            .filter(collection_images::image_id.eq_any(images_of.select(images::id))),
    )
    .execute(conn)
    .await?;
    diesel::update(
        collections::table
            .filter(collections::cover_image_id.eq_any(images_of.select(images::id.nullable()))),
    )
    .set(collections::cover_image_id.eq(None::<ImageId>))
    .execute(conn)
    .await?;
    // Their own collections go with their images (the images in them go by the cascade).
    diesel::delete(collections::table.filter(collections::user_id.eq(owner)))
        .execute(conn)
        .await?;
    let deleted = diesel::update(
        images::table
            .filter(images::user_id.eq(owner))
            .filter(images::deleted_at.is_null()),
    )
    .set(images::deleted_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    diesel::update(images::table.filter(images::user_id.eq(owner)))
        .set((images::prompt.eq(""), images::title.eq(None::<String>)))
        .execute(conn)
        .await?;
    // A person likes an image once, so each image loses at most one like here.
    diesel::sql_query(
        "WITH taken AS (DELETE FROM image_likes WHERE user_id = $1 RETURNING image_id) \
         UPDATE images SET like_count = like_count - 1 FROM taken WHERE images.id = taken.image_id",
    )
    .bind::<SqlUuid, _>(owner)
    .execute(conn)
    .await?;
    Ok(deleted)
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = Integer)]
    like_count: i32,
}

/// Adds or removes `user`'s like and returns the count after it. The like row's key makes it
/// idempotent; the count moves in the same statement, under the image's row lock.
pub async fn set_like(
    conn: &mut AsyncPgConnection,
    user: UserId,
    image: ImageId,
    liked: bool,
) -> QueryResult<i32> {
    let change = if liked {
        "WITH changed AS (INSERT INTO image_likes (image_id, user_id) VALUES ($1, $2) \
                          ON CONFLICT DO NOTHING RETURNING image_id) \
         UPDATE images SET like_count = like_count + 1 WHERE id IN (SELECT image_id FROM changed) \
         RETURNING like_count"
    } else {
        "WITH changed AS (DELETE FROM image_likes WHERE image_id = $1 AND user_id = $2 \
                          RETURNING image_id) \
         UPDATE images SET like_count = like_count - 1 WHERE id IN (SELECT image_id FROM changed) \
         RETURNING like_count"
    };
    let changed: Option<Count> = diesel::sql_query(change)
        .bind::<SqlUuid, _>(image)
        .bind::<SqlUuid, _>(user)
        .get_result(conn)
        .await
        .optional()?;
    match changed {
        Some(c) => Ok(c.like_count),
        None => {
            images::table
                .find(image)
                .select(images::like_count)
                .first(conn)
                .await
        }
    }
}

// ---- collections ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = collections, check_for_backend(diesel::pg::Pg))]
pub struct CollectionRow {
    pub id: CollectionId,
    pub user_id: UserId,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub visibility: String,
    pub cover_image_id: Option<ImageId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = collections)]
pub struct NewCollection<'a> {
    pub id: CollectionId,
    pub user_id: UserId,
    pub name: &'a str,
    pub slug: &'a str,
    pub description: Option<&'a str>,
    pub visibility: &'a str,
}

pub async fn insert_collection(
    conn: &mut AsyncPgConnection,
    new: &NewCollection<'_>,
) -> QueryResult<CollectionRow> {
    diesel::insert_into(collections::table)
        .values(new)
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

/// Slugs of the owner's collections equal to `base` or `base-<n>`.
pub async fn slugs_like(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    base: &str,
) -> QueryResult<Vec<String>> {
    collections::table
        .filter(collections::user_id.eq(owner))
        .filter(
            collections::slug
                .eq(base)
                .or(collections::slug.like(format!("{base}-%"))),
        )
        .select(collections::slug)
        .load(conn)
        .await
}

pub async fn find_collection(
    conn: &mut AsyncPgConnection,
    id: CollectionId,
) -> QueryResult<Option<CollectionRow>> {
    collections::table
        .find(id)
        .select(CollectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list_collections(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    public_only: bool,
    after: Option<CollectionId>,
    limit: i64,
) -> QueryResult<Vec<CollectionRow>> {
    let mut query = collections::table
        .filter(collections::user_id.eq(owner))
        .select(CollectionRow::as_select())
        .order(collections::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if public_only {
        query = query.filter(collections::visibility.eq("public"));
    }
    if let Some(after) = after {
        query = query.filter(collections::id.lt(after));
    }
    query.load(conn).await
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = collections)]
pub struct CollectionChangeset {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<Option<String>>,
    pub visibility: Option<String>,
    pub cover_image_id: Option<Option<ImageId>>,
}

pub async fn update_collection(
    conn: &mut AsyncPgConnection,
    id: CollectionId,
    changes: &CollectionChangeset,
) -> QueryResult<CollectionRow> {
    diesel::update(collections::table.find(id))
        .set(changes)
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn delete_collection(
    conn: &mut AsyncPgConnection,
    id: CollectionId,
) -> QueryResult<usize> {
    diesel::delete(collections::table.find(id))
        .execute(conn)
        .await
}

/// Adds an image (idempotent: adding it again keeps its first place).
pub async fn add_to_collection(
    conn: &mut AsyncPgConnection,
    collection: CollectionId,
    image: ImageId,
) -> QueryResult<usize> {
    diesel::insert_into(collection_images::table)
        .values((
            collection_images::collection_id.eq(collection),
            collection_images::image_id.eq(image),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

pub async fn remove_from_collection(
    conn: &mut AsyncPgConnection,
    collection: CollectionId,
    image: ImageId,
) -> QueryResult<usize> {
    diesel::delete(
        collection_images::table
            .filter(collection_images::collection_id.eq(collection))
            .filter(collection_images::image_id.eq(image)),
    )
    .execute(conn)
    .await?;
    // A removed image stops being the cover.
    diesel::update(
        collections::table
            .find(collection)
            .filter(collections::cover_image_id.eq(image)),
    )
    .set(collections::cover_image_id.eq(None::<ImageId>))
    .execute(conn)
    .await
}

pub async fn in_collection(
    conn: &mut AsyncPgConnection,
    collection: CollectionId,
    image: ImageId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        collection_images::table
            .filter(collection_images::collection_id.eq(collection))
            .filter(collection_images::image_id.eq(image)),
    ))
    .get_result(conn)
    .await
}

#[derive(Debug, QueryableByName)]
pub struct CollectionStats {
    #[diesel(sql_type = SqlUuid)]
    pub collection_id: CollectionId,
    #[diesel(sql_type = BigInt)]
    pub image_count: i64,
    /// The cover `viewer` sees: the chosen one if they may see it, else the image added last that
    /// they may see.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub cover_image_id: Option<ImageId>,
}

/// For each of a page of collections, in one query: how many of its images `viewer` may see, and
/// the cover they see. A collection without a chosen cover (or whose cover they may not see) shows
/// its newest image rather than none, through the collection's (added_at, image_id) index.
pub async fn collection_stats(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    ids: &[CollectionId],
) -> QueryResult<Vec<CollectionStats>> {
    const VISIBLE: &str =
        "i.deleted_at IS NULL AND (i.user_id = $2 OR (i.visibility <> 'private' AND NOT i.nsfw))";
    let ids: Vec<uuid::Uuid> = ids.iter().map(|c| c.0).collect();
    diesel::sql_query(format!(
        "SELECT c.id AS collection_id, \
           (SELECT count(*) FROM collection_images ci JOIN images i ON i.id = ci.image_id \
            WHERE ci.collection_id = c.id AND {VISIBLE}) AS image_count, \
           COALESCE( \
             (SELECT i.id FROM images i WHERE i.id = c.cover_image_id AND {VISIBLE}), \
             (SELECT ci.image_id FROM collection_images ci JOIN images i ON i.id = ci.image_id \
              WHERE ci.collection_id = c.id AND {VISIBLE} \
              ORDER BY ci.added_at DESC, ci.image_id DESC LIMIT 1)) AS cover_image_id \
         FROM collections c WHERE c.id = ANY($1)"
    ))
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
    .bind::<Nullable<SqlUuid>, _>(viewer.map(|v| v.0))
    .load(conn)
    .await
}

// ---- profiles ----

#[derive(Debug, QueryableByName)]
pub struct ProfileStats {
    #[diesel(sql_type = BigInt)]
    pub public_images: i64,
    #[diesel(sql_type = BigInt)]
    pub likes_received: i64,
}

pub async fn profile_stats(
    conn: &mut AsyncPgConnection,
    owner: UserId,
) -> QueryResult<ProfileStats> {
    diesel::sql_query(format!(
        "SELECT count(*) AS public_images, COALESCE(sum(i.like_count), 0)::bigint AS likes_received \
         FROM images i WHERE i.user_id = $1 AND {PUBLIC}"
    ))
    .bind::<SqlUuid, _>(owner)
    .get_result(conn)
    .await
}

// ---- the file sweep ----

#[derive(Debug, QueryableByName)]
pub struct DeletedFiles {
    #[diesel(sql_type = SqlUuid)]
    pub id: ImageId,
    #[diesel(sql_type = Text)]
    pub content_hash: String,
    #[diesel(sql_type = Text)]
    pub thumb_hash: String,
}

/// Deleted images whose files have not been dealt with yet.
pub async fn deleted_with_files(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<DeletedFiles>> {
    diesel::sql_query(
        "SELECT id, content_hash, thumb_hash FROM images \
         WHERE deleted_at IS NOT NULL AND files_removed_at IS NULL ORDER BY deleted_at LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Serialises everything that stores or removes the file with this hash, until the transaction ends.
pub async fn lock_file(conn: &mut AsyncPgConnection, hash: &str) -> QueryResult<()> {
    lock_files(conn, &[hash]).await
}

/// [`lock_file`] for several files in one statement. The locks are taken in hash order, the same
/// order every caller uses, so two transactions wanting the same files cannot deadlock.
pub async fn lock_files(conn: &mut AsyncPgConnection, hashes: &[&str]) -> QueryResult<()> {
    let mut hashes = hashes.to_vec();
    hashes.sort_unstable();
    hashes.dedup();
    // unnest keeps the array's order, so the locks follow the sort above.
    crate::db::Prepared(
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock(hashtextextended(h, 0)) FROM unnest($1::text[]) AS h",
        )
        .bind::<diesel::sql_types::Array<Text>, _>(hashes),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Whether a live image still uses this original (or thumbnail) file.
pub async fn file_in_use(
    conn: &mut AsyncPgConnection,
    hash: &str,
    thumb: bool,
) -> QueryResult<bool> {
    let column = if thumb { "thumb_hash" } else { "content_hash" };
    #[derive(QueryableByName)]
    struct Used {
        #[diesel(sql_type = Bool)]
        used: bool,
    }
    let used: Used = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM images WHERE {column} = $1 AND deleted_at IS NULL) AS used"
    ))
    .bind::<Text, _>(hash)
    .get_result(conn)
    .await?;
    Ok(used.used)
}

pub async fn mark_files_removed(conn: &mut AsyncPgConnection, id: ImageId) -> QueryResult<usize> {
    diesel::update(images::table.find(id))
        .set(images::files_removed_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// A live image's files, as `easel admin verify-files` checks them.
#[derive(Debug, Clone, Queryable)]
pub struct ImageFiles {
    pub id: ImageId,
    pub content_hash: String,
    pub thumb_hash: String,
    pub kind: String,
}

/// Up to `limit` live images after `after`, in id order: one page of the file check.
pub async fn live_image_files(
    conn: &mut AsyncPgConnection,
    after: Option<ImageId>,
    limit: i64,
) -> QueryResult<Vec<ImageFiles>> {
    let mut query = images::table
        .filter(images::deleted_at.is_null())
        .select((
            images::id,
            images::content_hash,
            images::thumb_hash,
            images::kind,
        ))
        .order(images::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(images::id.gt(after));
    }
    query.load(conn).await
}

/// Points every live image whose thumbnail was `old` at `new` (a thumbnail made again that came out
/// different, as a newer encoder may make it).
pub async fn replace_thumb(
    conn: &mut AsyncPgConnection,
    old: &str,
    new: &str,
) -> QueryResult<usize> {
    diesel::update(
        images::table
            .filter(images::thumb_hash.eq(old))
            .filter(images::deleted_at.is_null()),
    )
    .set(images::thumb_hash.eq(new))
    .execute(conn)
    .await
}
