// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        prefix -> Text,
        last_four -> Text,
        key_hash -> Bytea,
        scopes -> Array<Nullable<Text>>,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_balances (user_id) {
        user_id -> Uuid,
        free -> Int8,
        purchased -> Int8,
        free_granted_on -> Nullable<Date>,
        updated_at -> Timestamptz,
        signup_bonus_at -> Nullable<Timestamptz>,
        generations_submitted -> Int8,
    }
}

diesel::table! {
    credit_entries (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        free_delta -> Int8,
        purchased_delta -> Int8,
        free_after -> Int8,
        purchased_after -> Int8,
        generation_id -> Nullable<Uuid>,
        purchase_id -> Nullable<Uuid>,
        refund_of -> Nullable<Uuid>,
        admin_id -> Nullable<Uuid>,
        reason -> Nullable<Text>,
        grant_day -> Nullable<Date>,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamptz,
        seq -> Int8,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Uuid,
        key -> Text,
        method -> Text,
        path -> Text,
        request_digest -> Bytea,
        status -> Nullable<Int2>,
        response_body -> Nullable<Bytea>,
        response_content_type -> Nullable<Text>,
        response_location -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    generations (id) {
        id -> Uuid,
        user_id -> Uuid,
        model -> Text,
        prompt -> Text,
        negative_prompt -> Nullable<Text>,
        aspect_ratio -> Text,
        width -> Int4,
        height -> Int4,
        num_outputs -> Int4,
        seed -> Int8,
        style -> Nullable<Text>,
        visibility -> Text,
        status -> Text,
        progress -> Int2,
        credits_charged -> Int8,
        credits_refunded -> Int8,
        reservation_id -> Nullable<Uuid>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        error_retryable -> Nullable<Bool>,
        attempts -> Int4,
        run_after -> Timestamptz,
        deadline_at -> Timestamptz,
        claimed_by -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        // updated_at is kept by a trigger and never read here; left out to stay within 32 columns.
        provider_ref -> Nullable<Text>,
        webhook_token -> Nullable<Text>,
        provider_state -> Nullable<Jsonb>,
        provider_rank -> Int2,
    }
}

diesel::table! {
    images (id) {
        id -> Uuid,
        user_id -> Uuid,
        generation_id -> Uuid,
        output_index -> Int4,
        model -> Text,
        prompt -> Text,
        width -> Int4,
        height -> Int4,
        seed -> Int8,
        visibility -> Text,
        content_hash -> Text,
        thumb_hash -> Text,
        content_type -> Text,
        byte_size -> Int8,
        nsfw -> Bool,
        created_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        title -> Nullable<Text>,
        like_count -> Int4,
        trending_score -> Float8,
        // `search` (a generated tsvector) is only used from raw SQL.
        files_removed_at -> Nullable<Timestamptz>,
        kind -> Text,
        vertex_count -> Nullable<Int4>,
    }
}

diesel::table! {
    image_likes (image_id, user_id) {
        image_id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    collections (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        slug -> Text,
        description -> Nullable<Text>,
        visibility -> Text,
        cover_image_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    collection_images (collection_id, image_id) {
        collection_id -> Uuid,
        image_id -> Uuid,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    identity_events (id) {
        id -> Text,
        event_type -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        issued_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        last_active_at -> Timestamptz,
        second_factor -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Nullable<Text>,
        username -> Text,
        display_name -> Nullable<Text>,
        bio -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        role -> Text,
        external_subject -> Nullable<Text>,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        avatar_image_id -> Nullable<Uuid>,
        deleted_at -> Nullable<Timestamptz>,
        erased_at -> Nullable<Timestamptz>,
        email_verified_at -> Nullable<Timestamptz>,
        two_factor_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    purchases (id) {
        id -> Uuid,
        user_id -> Uuid,
        package_id -> Text,
        credits -> Int8,
        amount_cents -> Int8,
        currency -> Text,
        status -> Text,
        stripe_session_id -> Nullable<Text>,
        stripe_payment_intent -> Nullable<Text>,
        refunded_cents -> Int8,
        disputed -> Bool,
        credits_granted -> Int8,
        credits_clawed_back -> Int8,
        created_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        refund_due -> Bool,
        refund_requested_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    stripe_payment_adjustments (payment_intent) {
        payment_intent -> Text,
        refunded_cents -> Int8,
        disputed -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Text,
        event_type -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    uploads (id) {
        id -> Uuid,
        user_id -> Uuid,
        content_hash -> Text,
        content_type -> Text,
        byte_size -> Int8,
        width -> Int4,
        height -> Int4,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    generation_inputs (generation_id) {
        generation_id -> Uuid,
        source -> Text,
        source_id -> Uuid,
        content_hash -> Text,
        content_type -> Text,
        byte_size -> Int8,
        width -> Int4,
        height -> Int4,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(uploads -> users (user_id));
diesel::joinable!(generation_inputs -> generations (generation_id));
diesel::joinable!(purchases -> users (user_id));
diesel::joinable!(collection_images -> collections (collection_id));
diesel::joinable!(collection_images -> images (image_id));
diesel::joinable!(collections -> users (user_id));
diesel::joinable!(image_likes -> images (image_id));
diesel::joinable!(credit_balances -> users (user_id));
diesel::joinable!(generations -> credit_entries (reservation_id));
diesel::joinable!(generations -> users (user_id));
diesel::joinable!(images -> generations (generation_id));
diesel::joinable!(images -> users (user_id));
diesel::joinable!(idempotency_keys -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    collection_images,
    collections,
    credit_balances,
    credit_entries,
    generation_inputs,
    generations,
    identity_events,
    image_likes,
    images,
    idempotency_keys,
    purchases,
    refresh_tokens,
    sessions,
    stripe_events,
    stripe_payment_adjustments,
    uploads,
    users,
);
