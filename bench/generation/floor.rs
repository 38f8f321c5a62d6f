//! The floor for bench/generation: `POST /v1/generations` on the same stack as `easel serve`
//! (actix-web, the same pool, the same worker count) that does nothing but insert the generation
//! row. No auth, no validation, no credits, no job: what accepting a generation costs at the least.
//!
//! Usage: DATABASE_URL=… EASEL_BIND=127.0.0.1:PORT generation_floor (the database must hold a user).

use actix_web::{App, HttpResponse, HttpServer, web};
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;

#[derive(serde::Deserialize)]
struct Submit {
    prompt: String,
    model: String,
    seed: i64,
}

struct Floor {
    pool: easel::db::Pool,
    user: uuid::Uuid,
}

#[derive(diesel::QueryableByName)]
struct UserId {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

async fn submit(floor: web::Data<Floor>, body: web::Json<Submit>) -> HttpResponse {
    let id = uuid::Uuid::now_v7();
    let inserted = match floor.pool.get().await {
        // Kept prepared, as the server keeps its statements.
        Ok(mut conn) => easel::db::Prepared(
            diesel::sql_query(
                "INSERT INTO generations (id, user_id, model, prompt, aspect_ratio, width, height, \
             num_outputs, seed, visibility, status, credits_charged, deadline_at) \
             VALUES ($1, $2, $3, $4, '1:1', 64, 64, 1, $5, 'private', 'queued', 1, \
             now() + interval '1 hour')",
            )
            .bind::<SqlUuid, _>(id)
            .bind::<SqlUuid, _>(floor.user)
            .bind::<Text, _>(&body.model)
            .bind::<Text, _>(&body.prompt)
            .bind::<BigInt, _>(body.seed),
        )
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match inserted {
        Ok(_) => HttpResponse::Accepted().json(serde_json::json!({"id": id, "status": "queued"})),
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let bind = std::env::var("EASEL_BIND")?;
    let pool_size = std::env::var("EASEL_DB_POOL_SIZE").map_or(Ok(32), |v| v.parse())?;
    actix_web::rt::System::new().block_on(async move {
        let pool = easel::db::pool(&url, pool_size)?;
        let user = {
            let mut conn = pool.get().await?;
            diesel::sql_query("SELECT id FROM users ORDER BY id LIMIT 1")
                .get_result::<UserId>(&mut conn)
                .await?
                .id
        };
        let floor = web::Data::new(Floor { pool, user });
        HttpServer::new(move || {
            App::new()
                .app_data(floor.clone())
                .route("/v1/generations", web::post().to(submit))
        })
        .bind(bind)?
        .run()
        .await?;
        anyhow::Ok(())
    })
}
